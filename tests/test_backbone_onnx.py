"""Backbones served by ONNX Runtime: the export agrees with torch on real pictures, and a missing,
stale or damaged export is rebuilt (model-build time) or refused with the rebuild command (serving)."""
import io
import itertools
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import DEMO_CACHE, MODELS, encode, needs_classifier
from PIL import Image

from app import create_app
from app.build import backbone_export
from app.build.backbones import face_batch, load_backbone
from app.inference import backbone_onnx
from app.inference.identify import Identifier
from app.inference.preprocess import face_arrays
from app.nets.inception import IMAGENET_MEAN, IMAGENET_STD, Inception3
from app.storage.model_dirs import ModelError, load_arrays, load_card

skimage_data = pytest.importorskip("skimage.data")
torch.set_num_threads(1)

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def photos():
    """Real photos from scikit-image, whole and as face-sized crops."""
    out = []
    for name in ("chelsea", "coffee", "astronaut", "rocket", "cat"):
        picture = getattr(skimage_data, name)()
        out.append(Image.fromarray(picture))
        h, w = picture.shape[:2]
        out.append(Image.fromarray(picture[h // 4:h // 4 + 160, w // 3:w // 3 + 140]))
    return out


def agreement(backbone, runner, images):
    """(max abs feature difference, ImageNet top-1 of torch, of ONNX Runtime) on the same arrays."""
    batch = face_arrays(images, backbone.input_size, backbone.mean, backbone.std)
    with torch.inference_mode():
        expected = backbone.module.forward_features(torch.from_numpy(batch))
        got = torch.from_numpy(runner.features(batch))
        top_torch = backbone.module.forward_head(expected).argmax(1).tolist()
        top_ort = backbone.module.forward_head(got).argmax(1).tolist()
    return float((expected - got).abs().max()), top_torch, top_ort


@pytest.fixture(scope="module")
def efficientnet_export():
    """The repository's cached export of EfficientNet-Lite0 (built here if setup has not)."""
    record, _ = backbone_export.ensure_export("efficientnet_lite0")
    return backbone_onnx.DEFAULT_DIR / record["file"], record


def test_efficientnet_onnx_agrees_with_torch_on_photos(efficientnet_export):
    backbone = load_backbone("efficientnet_lite0")
    runner = backbone_onnx.load_onnx_backbone("efficientnet_lite0", threads=1)
    diff, top_torch, top_ort = agreement(backbone, runner, photos())
    assert diff <= backbone_export.MAX_ABS_DIFF
    assert top_ort == top_torch
    assert top_ort[0] in CAT_CLASSES  # Chelsea is a cat through ONNX Runtime too
    assert top_ort[2] == 967  # and the coffee an espresso


@needs_classifier
def test_served_identifier_names_every_held_out_face_as_torch_does(efficientnet_export):
    """The demo classifier on the demo cast's test split (unseen expressions, outfit and
    backgrounds, never used in training): the ONNX Runtime Identifier and the torch backbone +
    head give the same top-1 for every face."""
    if not (DEMO_CACHE / "sprites").is_dir():
        pytest.skip("demo cast not fetched: run `scripts/setup.sh --dev`")
    from app.training.demo_faces import demo_face_crops

    faces = [c.image for c in itertools.islice(demo_face_crops("test", 30, seed=0), 40)]
    model_dir = MODELS / "demo-classifier"
    identifier = Identifier.load(model_dir)
    card = load_card(model_dir)
    backbone = load_backbone(card["backbone"])
    head = torch.nn.Linear(backbone.feature_dim, len(card["labels"]))
    state = load_arrays(model_dir, card)
    head.load_state_dict({k: torch.from_numpy(state[k]) for k in ("weight", "bias")})  # the decision's references aside
    with torch.inference_mode():
        features = backbone.features(face_batch(faces, backbone))
        # The same calibrated decision on the torch backbone's features and head.
        expected = identifier.calibration.label_probabilities(head(features).double().numpy(),
                                                              features.double().numpy())
    got = identifier.probabilities(faces)
    assert len(faces) >= 20
    assert got.argmax(1).tolist() == expected.argmax(1).tolist()
    assert np.abs(got - expected).max() < 1e-3


def inception_weights(path):
    """Inception-v3 with random weights whose batch norms are set from real photos, so features
    have a real spread (untouched random weights give features of 1e-7 that agree trivially)."""
    net = Inception3()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # running statistics = the statistics of this one batch
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(face_arrays(photos()[:6], 299, IMAGENET_MEAN, IMAGENET_STD)))
    torch.save(net.state_dict(), path)
    return path


def test_inception_onnx_agrees_with_torch_on_photos(tmp_path):
    try:
        weights, _ = backbone_onnx.weights_file("inception_v3")
        real = True
    except ModelError:  # the official file is a manual download: use spread random weights
        weights, real = inception_weights(tmp_path / "inception.pth"), False
    record = backbone_export.build_export("inception_v3", tmp_path / "onnx", weights,
                                        faces=backbone_export.verification_faces(3))
    assert record["verified"]["same_top1"] == 3
    backbone = load_backbone("inception_v3", weights)
    runner = backbone_onnx.load_onnx_backbone("inception_v3", tmp_path / "onnx", weights_path=weights)
    diff, top_torch, top_ort = agreement(backbone, runner, photos())
    assert diff <= backbone_export.MAX_ABS_DIFF
    with torch.inference_mode():
        scale = float(backbone.features(face_batch(photos()[:2], backbone)).abs().max())
    assert scale > 0.1  # the comparison above is not between two near-zero vectors
    assert top_ort == top_torch
    if real:
        assert top_ort[0] in CAT_CLASSES


# ---------- missing, stale, damaged ----------

def copy_export(export, onnx_dir):
    path, record = export
    onnx_dir.mkdir()
    shutil.copy(path, onnx_dir / path.name)
    record_path = onnx_dir / path.with_suffix(".json").name
    record_path.write_text(json.dumps(record))
    return onnx_dir / path.name, record_path


def test_missing_export_is_refused_with_the_command(tmp_path):
    with pytest.raises(ModelError, match=r"python -m app\.build\.backbone_export efficientnet_lite0"):
        backbone_onnx.load_onnx_backbone("efficientnet_lite0", tmp_path / "empty")


@needs_classifier
def test_served_identify_without_an_export_answers_503_naming_the_command(tmp_path, caplog):
    app = create_app({"TESTING": True, "TORCH_THREADS": 1, "REPORT_DIR": str(tmp_path / "r"),
                      "ONNX_DIR": str(tmp_path / "no-exports")})
    face = encode(np.full((64, 64, 3), 128, np.uint8))
    response = app.test_client().post("/api/identify", data={"faces": [(io.BytesIO(face), "f.png")]})
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "model_unavailable"
    # The command is for the operator's log; clients are told which model, not how to rebuild it.
    assert "classifier" in error["message"] and "python -m" not in error["message"]
    assert "python -m app.build.backbone_export efficientnet_lite0" in caplog.text


@pytest.mark.parametrize("damage, reason", [
    ("other weights", "made from other weights"),
    ("old version", "export version"),
    ("changed file", "does not match its record"),
    ("bad record", "unreadable"),
])
def test_stale_or_damaged_export_is_refused(efficientnet_export, tmp_path, damage, reason):
    onnx_path, record_path = copy_export(efficientnet_export, tmp_path / "onnx")
    record = json.loads(record_path.read_text())
    if damage == "other weights":
        record["weights_sha256"] = "0" * 64
    elif damage == "old version":
        record["export_version"] = backbone_onnx.EXPORT_VERSION - 1
    elif damage == "changed file":
        onnx_path.write_bytes(onnx_path.read_bytes()[:-10])
    record_path.write_text("{not json" if damage == "bad record" else json.dumps(record))
    with pytest.raises(ModelError, match=reason):
        backbone_onnx.load_onnx_backbone("efficientnet_lite0", tmp_path / "onnx")
    with pytest.raises(ModelError, match="python -m app.build.backbone_export"):
        Identifier.load(MODELS / "demo-classifier", tmp_path / "onnx")


def test_stale_export_is_rebuilt_at_model_build_time(efficientnet_export, tmp_path):
    onnx_path, record_path = copy_export(efficientnet_export, tmp_path / "onnx")
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps(dict(record, export_version=0)))
    rebuilt, built = backbone_export.ensure_export("efficientnet_lite0", tmp_path / "onnx")
    assert built and rebuilt["export_version"] == backbone_onnx.EXPORT_VERSION
    assert rebuilt["verified"]["same_top1"] == rebuilt["verified"]["count"]
    again, built = backbone_export.ensure_export("efficientnet_lite0", tmp_path / "onnx")
    assert not built and again == rebuilt
    runner = backbone_onnx.load_onnx_backbone("efficientnet_lite0", tmp_path / "onnx")
    assert runner.face_features([Image.fromarray(skimage_data.chelsea())]).shape == (1, 1280)
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted([onnx_path.name, record_path.name])


def test_export_that_disagrees_with_torch_is_not_kept(tmp_path, monkeypatch):
    """A graph that computes something else (here: its input scaled by 1.5) fails verification,
    and neither a file nor a record is left behind."""
    original = backbone_export.export_graph

    def wrong_graph(module, input_size, dest):
        class Scaled(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = module

            def forward_features(self, x):
                return module.forward_features(x * 1.5)
        original(Scaled(), input_size, dest)

    monkeypatch.setattr(backbone_export, "export_graph", wrong_graph)
    with pytest.raises(ModelError, match="disagrees with torch"):
        backbone_export.build_export("efficientnet_lite0", tmp_path / "onnx")
    assert list((tmp_path / "onnx").iterdir()) == []
