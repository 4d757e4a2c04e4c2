"""ONNX Runtime serving of cutout networks: exports verified against torch, stale ones refused."""
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from conftest import MODELS, encode, needs_cutout
from skimage import data

from app.build import cutout_export as onnx_export
from app.build.torch_weights import load_state_dict, write_torch_model_dir
from app.inference.cutout import Cutter
from app.inference.onnx_runner import OnnxCutout, check_preprocess, onnx_file
from app.storage.model_dirs import ModelError, load_card


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A copy of models/demo-cutout with its ONNX export, as setup makes it."""
    if not (MODELS / "demo-cutout" / "card.json").is_file():
        pytest.skip("models/demo-cutout not installed")
    model_dir = tmp_path_factory.mktemp("models") / "demo-cutout"
    shutil.copytree(MODELS / "demo-cutout", model_dir,
                    ignore=shutil.ignore_patterns("model.onnx", "onnx.json", "eval"))
    record = onnx_export.export_cutout(model_dir, pictures=[data.chelsea()], threads=1)
    return model_dir, record


def iou(a, b):
    return np.logical_and(a >= 0.5, b >= 0.5).sum() / max(np.logical_or(a >= 0.5, b >= 0.5).sum(), 1)


@needs_cutout
def test_the_export_records_its_weights_and_its_agreement_with_torch(exported):
    model_dir, record = exported
    card = load_card(model_dir)
    assert record["weights_sha256"] == card["sha256"]
    assert record["verified"]["max_abs_diff"] <= onnx_export.MAX_ABS_DIFF
    assert record["verified"]["min_mask_iou"] >= onnx_export.MIN_IOU
    assert json.loads((model_dir / "onnx.json").read_text()) == record


@needs_cutout
@pytest.mark.parametrize("picture", ["chelsea", "astronaut"])
def test_onnx_runtime_serves_the_same_map_as_the_torch_cutter(exported, picture):
    model_dir, _ = exported
    rgb = getattr(data, picture)()  # real photos, larger than the model's input
    runner = OnnxCutout.load(model_dir, threads=1)
    got = runner.probability(rgb)
    expected = Cutter.load(model_dir).probability(rgb)
    assert got.shape == rgb.shape[:2] and got.dtype == np.float32
    assert 0.0 <= got.min() and got.max() <= 1.0
    assert np.abs(got - expected).max() < 1e-3
    assert iou(got, expected) >= 0.99


@needs_cutout
def test_the_export_serves_other_sizes_than_the_cards(exported):
    model_dir, _ = exported
    runner = OnnxCutout.load(model_dir, threads=1, size=256)
    assert runner.tensor(data.chelsea()).shape == (1, 3, 256, 256)
    assert runner.probability(data.chelsea()).shape == (300, 451)


@needs_cutout
def test_a_missing_export_is_refused_with_the_command_that_builds_it(exported, tmp_path):
    model_dir = tmp_path / "demo-cutout"
    shutil.copytree(exported[0], model_dir)
    (model_dir / "onnx.json").unlink()
    with pytest.raises(ModelError, match=r"no ONNX export.*python -m app.build.cutout_export"):
        OnnxCutout.load(model_dir)


@needs_cutout
def test_an_altered_export_is_refused(exported, tmp_path):
    model_dir = tmp_path / "demo-cutout"
    shutil.copytree(exported[0], model_dir)
    with open(model_dir / "model.onnx", "r+b") as fh:
        fh.truncate(4096)
    with pytest.raises(ModelError, match="does not match its record"):
        OnnxCutout.load(model_dir)


@needs_cutout
def test_an_export_of_older_weights_is_refused_then_rebuilt(exported, tmp_path):
    model_dir = tmp_path / "demo-cutout"
    shutil.copytree(exported[0], model_dir)
    card = load_card(model_dir)
    state = load_state_dict(model_dir, card)
    state["side1.bias"] = state["side1.bias"] + 0.5  # retrained weights: a new sha256
    # New weights arrive as a `git pull` brings them: card and weights replaced, the git-ignored
    # export left behind.
    write_torch_model_dir(tmp_path / "retrained", card, state)
    for name in ("card.json", "weights.pt"):
        shutil.copyfile(tmp_path / "retrained" / name, model_dir / name)
    with pytest.raises(ModelError, match=r"made from other weights.*stale"):
        OnnxCutout.load(model_dir)
    record, built = onnx_export.ensure_export(model_dir, threads=1)
    assert built and record["weights_sha256"] == load_card(model_dir)["sha256"]
    runner = OnnxCutout.load(model_dir, threads=1)
    expected = Cutter.load(model_dir).probability(data.chelsea())
    assert np.abs(runner.probability(data.chelsea()) - expected).max() < 1e-3
    # Fresh now: a second call builds nothing.
    assert onnx_export.ensure_export(model_dir, threads=1)[1] is False


@needs_cutout
def test_pad_keeps_the_aspect_and_equals_squash_on_a_square_picture(exported):
    model_dir, _ = exported
    path, spec = onnx_file(model_dir)
    squash = OnnxCutout(path, spec, threads=1)
    pad = OnnxCutout(path, dict(spec, fit="pad"), threads=1)
    square = data.chelsea()[:, :300]
    assert np.abs(pad.probability(square) - squash.probability(square)).max() < 1e-5
    wide = data.chelsea()
    got = pad.probability(wide)
    assert got.shape == wide.shape[:2] and 0.0 <= got.min() and got.max() <= 1.0
    assert np.abs(got - squash.probability(wide)).max() > 0.01  # another picture went in


@needs_cutout
def test_a_small_figure_gets_a_second_pass_on_its_crop(exported):
    from conftest import DEMO_CACHE
    model_dir, _ = exported
    if not (DEMO_CACHE / "sprites").is_dir():
        pytest.skip("demo cast not fetched")
    from app.demo_data import renpy_cast
    from app.inference.cutout import postprocess

    (sprite,) = renpy_cast.load_sprites(DEMO_CACHE, ("lucy happy",))
    canvas = np.full((1200, 1600, 3), 235, np.uint8)
    small = cv2.resize(sprite.rgba, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    a = small[..., 3:4] / 255.0
    canvas[700:700 + h, 1100:1100 + w] = (small[..., :3] * a + canvas[700:700 + h, 1100:1100 + w] * (1 - a))
    truth = np.zeros(canvas.shape[:2])
    truth[700:700 + h, 1100:1100 + w] = a[..., 0]
    path, spec = onnx_file(model_dir)
    once = OnnxCutout(path, spec, threads=1).probability(canvas)
    twice = OnnxCutout(path, dict(spec, refine_small=0.3), threads=1).probability(canvas)
    assert twice[:500].max() == 0 and twice[:, :900].max() == 0  # only the crop around the figure
    assert iou(postprocess(twice) / 255, truth) >= iou(postprocess(once) / 255, truth)


@pytest.mark.parametrize("spec, message", [
    ({"mean": [0, 0, 0]}, "malformed"),
    ({"size": 320, "std": [1, 0, 1]}, "positive stds"),
    ({"size": 320, "mean": [0, 0]}, "3 means"),
    ({"size": 320, "output_normalise": "softmax"}, "output_normalise"),
    ({"size": 320, "fit": "crop"}, "fit must be"),
    ({"size": 320, "refine_small": 1.5}, "refine_small"),
])
def test_a_malformed_preprocess_is_refused(spec, message):
    with pytest.raises(ModelError, match=message):
        check_preprocess(spec, "card.json")


class Noisy(torch.nn.Module):
    """A net whose traced graph cannot match torch: fresh noise on every run."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return (torch.sigmoid(self.conv(x) + torch.rand_like(x[:, :1]) * 4),)


def test_an_export_that_disagrees_with_torch_is_not_kept(tmp_path):
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"the previous export")
    spec = {"size": 64, "divide": 255.0, "output_normalise": "none"}
    with pytest.raises(ModelError, match="disagrees with torch.*not kept"):
        onnx_export.export_net(Noisy(), spec, dest, [data.chelsea()])
    assert dest.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@needs_cutout
def test_execution_providers_are_a_setting_and_a_missing_one_is_a_clear_503(tmp_path, caplog):
    """ONNX_PROVIDERS (FLASK_ONNX_PROVIDERS, a list or "A,B"): a GPU worker names CUDA first; an
    onnxruntime without it refuses to load the model: 503 to the client, the reason in the log."""
    import io

    from app import create_app
    png = encode(np.full((64, 64, 3), 120, np.uint8))
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "a"), "CUTOUT_MODEL": "demo-cutout",
                      "ONNX_PROVIDERS": "NoSuchExecutionProvider,CPUExecutionProvider"})
    answer = app.test_client().post("/api/cutout", data={"image": (io.BytesIO(png), "p.png")})
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "NoSuchExecutionProvider, which this onnxruntime lacks" in caplog.text
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "b"), "CUTOUT_MODEL": "demo-cutout"})
    assert app.test_client().post("/api/cutout", data={"image": (io.BytesIO(png), "p.png")}).status_code == 200


def test_weights_fp16_holds_exactly_are_stored_halved_and_serve_the_same_bytes(tmp_path, monkeypatch):
    """app/build/onnx_graph.py stores each weight tensor that fp16 holds exactly as fp16 with a Cast
    back (IS-Net's weights come from an fp16 file): the file shrinks, the map stays bit for bit."""
    import onnx
    from onnx import TensorProto

    from app.build import onnx_graph

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(64, 1, 3, padding=1), torch.nn.Sigmoid())
    with torch.no_grad():
        for name, p in net.named_parameters():  # as from an fp16 file, but one tensor fp16 cannot hold
            p.copy_(p.half().float() + (1e-4 if name == "0.weight" else 0.0))
    spec = {"size": 64, "divide": 255.0, "output_normalise": "none"}
    halved, whole = tmp_path / "halved.onnx", tmp_path / "whole.onnx"
    axes = {"input": {2: "height", 3: "width"}, "output": {2: "height", 3: "width"}}
    onnx_graph.trace(net, torch.zeros(1, 3, 64, 64), halved, "input", "output", axes)
    monkeypatch.setattr(onnx_graph, "store_exact_halves", lambda path: 0)
    onnx_graph.trace(net, torch.zeros(1, 3, 64, 64), whole, "input", "output", axes)
    types = {t.name: t.data_type for t in onnx.load(str(halved)).graph.initializer}
    assert types["2.weight.fp16"] == TensorProto.FLOAT16
    assert types["0.weight"] == TensorProto.FLOAT  # not exact in fp16: kept
    assert types["4.weight"] == TensorProto.FLOAT  # too small to be worth a Cast
    assert halved.stat().st_size < 0.75 * whole.stat().st_size
    rgb = data.astronaut()
    maps = [OnnxCutout(path, spec).probability(rgb) for path in (halved, whole)]
    assert maps[0].tobytes() == maps[1].tobytes()


@pytest.mark.parametrize("arena", [False, True])
def test_the_cpu_arena_is_a_setting(tmp_path, arena):
    """ONNX_CPU_ARENA reaches every session the app makes (off by default: README "Memory of a
    serving worker")."""
    from onnx import TensorProto, helper

    from app import create_app
    from app.config import DEFAULTS
    from app.inference.onnx_runner import session

    assert DEFAULTS["ONNX_CPU_ARENA"] is False
    path = tmp_path / "relu.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.write_bytes(model.SerializeToString())
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "r"), "ONNX_CPU_ARENA": arena})
    with app.app_context():
        assert session(path).get_session_options().enable_cpu_mem_arena is arena
    assert session(path).get_session_options().enable_cpu_mem_arena is False  # outside an app
