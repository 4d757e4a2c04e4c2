"""Fine-tuning IS-Net from isnet-general: what trains, what is committed, how setup builds it."""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import MODELS, needs_isnet, needs_isnet_anime
from test_cutout_training import _pictures

from app.build import isnet_general, isnet_tuned
from app.inference.cutout import normalise
from app.inference.onnx_runner import OnnxCutout
from app.nets.u2net import U2NETP
from app.storage.model_dirs import ModelError
from app.training.cutout_data import to_tensors
from app.training.cutout_train import CutoutTrainConfig, bce_loss, build_net, forward, set_mode, trainable

DECODER = ["stage1d.", "side1."]
NPM_FILE = MODELS / isnet_general.NAME / isnet_general.NPM_FILE


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_isnet_inputs_are_normalised_as_the_npm_weights_expect():
    rgb = np.array([[[0, 128, 255]]], np.uint8)
    assert normalise(rgb, "isnet")[:, 0, 0].tolist() == [-0.5, 0.0, 127 / 256]
    # U-2-Net divides by the picture's maximum first: another convention for the same pixels.
    assert normalise(rgb, "u2netp")[:, 0, 0].tolist() != [-0.5, 0.0, 127 / 256]


def test_train_only_freezes_the_rest_and_frozen_norm_keeps_the_statistics():
    torch.manual_seed(0)
    net = U2NETP()
    cfg = CutoutTrainConfig(train_only=["side"], frozen_norm=True, bf16=True)
    params = trainable(net, cfg)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.Adam(params, lr=1e-2)
    x, y = to_tensors(*_pictures(2, 64))
    set_mode(net, cfg)
    loss = bce_loss(forward(net, x, cfg), y)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("side") for k in changed)  # norms' statistics untouched too
    with pytest.raises(ValueError, match="names no parameter"):
        trainable(net, CutoutTrainConfig(train_only=["nothing."]))


@needs_isnet
def test_a_decoder_fine_tune_from_isnet_general_lowers_the_loss_on_a_fixed_batch():
    cfg = CutoutTrainConfig(arch="isnet", init="isnet-general", train_only=DECODER, frozen_norm=True)
    net = build_net(cfg)
    opt = torch.optim.Adam(trainable(net, cfg), lr=1e-4)
    x, y = to_tensors(*_pictures(1, 64), "isnet")
    losses = []
    for _ in range(3):
        set_mode(net, cfg)
        loss = bce_loss(forward(net, x, cfg), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[2] < losses[0]


def test_init_isnet_general_needs_the_isnet_architecture():
    with pytest.raises(ValueError, match="--arch isnet"):
        build_net(CutoutTrainConfig(arch="u2netp", init="isnet-general"))


@pytest.fixture(scope="module")
def tuned_dir(tmp_path_factory):
    """A tuned directory as a run writes it: isnet-general with side1's bias moved, built as setup does."""
    if not (MODELS / isnet_general.NAME / "card.json").is_file():
        pytest.skip("models/isnet-general not installed")
    from app.nets.isnet_onnx import load_isnet

    root = tmp_path_factory.mktemp("tuned")
    state = load_isnet(NPM_FILE).state_dict()
    state["side1.bias"] = state["side1.bias"] + 4.0
    torch.save({"model": state}, root / "best.pt")
    model_dir = root / "isnet-test"
    tuned = isnet_tuned.write_tuned(root / "best.pt", model_dir, "isnet-test", DECODER)
    isnet_tuned.build(model_dir, MODELS)
    return model_dir, tuned


@needs_isnet
def test_only_the_trained_tensors_are_committed_in_fp16(tuned_dir):
    model_dir, tuned = tuned_dir
    kept = torch.load(model_dir / "tuned.pt", weights_only=True)
    assert kept and all(k.startswith(tuple(DECODER)) and v.dtype == torch.float16 for k, v in kept.items())
    assert (model_dir / "tuned.pt").stat().st_size < 2_000_000  # the base stays in npm
    assert tuned["tuned"]["tensors"] == len(kept) and tuned["base"] == "isnet-general"


@needs_isnet
def test_setup_builds_a_served_model_that_carries_the_trained_tensors(tuned_dir, tmp_path):
    model_dir, _ = tuned_dir
    assert isnet_tuned.status(model_dir, MODELS) is None
    card = json.loads((model_dir / "card.json").read_text())
    assert card["format"] == "onnx" and card["preprocess"] == isnet_general.PREPROCESS
    assert card["export"]["verified"]["min_mask_iou"] >= 0.99
    picture = _pictures(1, 96)[0][0]
    ours = OnnxCutout.load(model_dir, threads=1)
    base = OnnxCutout.load(MODELS / isnet_general.NAME, threads=1)
    raw_ours, raw_base = ours.run(ours.tensor(picture)), base.run(base.tensor(picture))
    assert np.abs(raw_ours - raw_base).max() > 0.05  # side1's bias moved the main map
    # Held-out figures go to tuned.json and the card alike, and the build stays valid.
    isnet_tuned.set_metrics(model_dir, {"iou": 0.5})
    assert json.loads((model_dir / "card.json").read_text())["metrics"] == {"iou": 0.5}
    assert isnet_tuned.status(model_dir, MODELS) is None


@needs_isnet
def test_an_altered_or_foreign_tuned_file_is_refused_clearly(tuned_dir, tmp_path):
    model_dir, _ = tuned_dir
    copy = tmp_path / "isnet-copy"
    shutil.copytree(model_dir, copy)
    with open(copy / "tuned.pt", "ab") as f:
        f.write(b"\0")
    assert "tuned.pt is missing or is not the file" in isnet_tuned.status(copy, MODELS)
    with pytest.raises(ModelError, match="sha256"):
        isnet_tuned.build(copy, MODELS)
    # A tensor IS-Net does not have in that shape is named.
    torch.save({"side1.bias": torch.zeros(2, dtype=torch.float16)}, copy / "tuned.pt")
    tuned = json.loads((copy / "tuned.json").read_text())
    tuned["tuned"]["sha256"] = isnet_tuned.sha256_file(copy / "tuned.pt")
    (copy / "tuned.json").write_text(json.dumps(tuned))
    with pytest.raises(ModelError, match="side1.bias"):
        isnet_tuned.build(copy, MODELS)
    assert isnet_tuned.status(copy, MODELS) is not None  # built from another tuned.json


@needs_isnet
def test_the_serving_size_comes_from_the_card(tuned_dir, tmp_path):
    from app.inference.cutout import Cutter

    model_dir, tuned = tuned_dir
    served = isnet_tuned.served_preprocess(dict(tuned, serving={"size": 768, "fit": "pad"}))
    assert served == dict(isnet_general.PREPROCESS, size=768, fit="pad")
    # A card with that preprocessing is served at 768, padded: runner, Cutter and bench alike.
    copy = tmp_path / "isnet-copy"
    copy.mkdir()
    (copy / "model.onnx").symlink_to(model_dir / "model.onnx")
    card = json.loads((model_dir / "card.json").read_text())
    (copy / "card.json").write_text(json.dumps(dict(card, input_size=768, preprocess=served)))
    runner = OnnxCutout.load(copy, threads=1)
    assert runner.input_size == 768 and runner.preprocess["fit"] == "pad"
    assert Cutter.load(copy).input_size == 768
    # A tuned.json whose serving changed makes the built card stale: setup rebuilds it.
    for name in ("tuned.pt", "card.json"):
        shutil.copyfile(model_dir / name, copy / name)
    (copy / "tuned.json").write_text(json.dumps(dict(tuned, serving={"size": 768})))
    assert "built from another tuned.json" in isnet_tuned.status(copy, MODELS)
    # Setup then rewrites the card alone: the ONNX file holds the same tensors.
    card = isnet_tuned.build(copy, MODELS)
    assert card["preprocess"]["size"] == card["input_size"] == 768
    assert (copy / "model.onnx").is_symlink() and isnet_tuned.status(copy, MODELS) is None


@needs_isnet_anime
def test_the_default_model_is_served_at_the_size_its_card_names():
    from app.inference.cutout import Cutter

    tuned = json.loads((MODELS / "isnet-anime" / "tuned.json").read_text())
    card = json.loads((MODELS / "isnet-anime" / "card.json").read_text())
    assert card["preprocess"] == isnet_tuned.served_preprocess(tuned)
    assert Cutter.load(MODELS / "isnet-anime").input_size == card["input_size"] == card["preprocess"]["size"]


@needs_isnet_anime
def test_a_second_round_starts_from_the_tuned_model_by_its_name():
    """`--init isnet-anime`: isnet-general with isnet-anime's trained tensors in place, the rest untouched."""
    net = build_net(CutoutTrainConfig(arch="isnet", init="isnet-anime"))
    own = net.state_dict()
    trained = torch.load(MODELS / "isnet-anime" / "tuned.pt", weights_only=True)
    assert all(torch.equal(own[k], v.float()) for k, v in trained.items())
    from app.nets.isnet_onnx import load_isnet
    base = load_isnet(NPM_FILE).state_dict()
    untouched = [k for k in own if k not in trained]
    assert untouched and all(torch.equal(own[k], base[k]) for k in untouched)
    with pytest.raises(ValueError, match="--arch isnet"):
        build_net(CutoutTrainConfig(arch="u2netp", init="isnet-anime"))
