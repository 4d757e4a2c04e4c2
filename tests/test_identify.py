"""Classifier service on the real EfficientNet-Lite0 backbone: train, save, load, identify."""
import numpy as np
import pytest
import torch
from PIL import Image

from app.build.backbones import face_batch, load_backbone
from app.inference.identify import Identifier, classifier_card
from app.inference.preprocess import PREPROCESSING_VERSION, face_array
from app.storage.model_dirs import ModelError, load_card, write_model_dir

skimage_data = pytest.importorskip("skimage.data")
torch.set_num_threads(1)


def crops(photo, count, seed, size=(96, 120)):
    """Random crops of a photo, standing in for face crops of one character."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        w, h = size
        x = int(rng.integers(0, photo.shape[1] - w))
        y = int(rng.integers(0, photo.shape[0] - h))
        out.append(Image.fromarray(photo[y:y + h, x:x + w]))
    return out


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("efficientnet_lite0")


@pytest.fixture(scope="module")
def trained(backbone, tmp_path_factory):
    """A head trained on two labels (cat, coffee crops) and saved as a model directory."""
    images = crops(skimage_data.chelsea(), 6, 1) + crops(skimage_data.coffee(), 6, 2)
    targets = torch.tensor([0] * 6 + [1] * 6)
    feats = backbone.features(face_batch(images, backbone))
    torch.manual_seed(0)
    head = torch.nn.Linear(backbone.feature_dim, 2)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(feats), targets).backward()
        opt.step()
    model_dir = tmp_path_factory.mktemp("models") / "two-labels"
    card = classifier_card("two-labels", backbone, ["cat", "coffee"], 0.6,
                           training={"data": "skimage chelsea/coffee crops", "command": "pytest"},
                           metrics={})
    write_model_dir(model_dir, card, head.state_dict(), weights_name="weights.npz")
    return head.eval(), model_dir


def test_saved_head_predicts_the_same(backbone, trained):
    head, model_dir = trained
    ident = Identifier.load(model_dir)
    assert ident.labels == ["cat", "coffee"]
    test_images = crops(skimage_data.chelsea(), 3, 10) + crops(skimage_data.coffee(), 3, 11)
    with torch.no_grad():
        expected = torch.softmax(head(backbone.features(face_batch(test_images, backbone))), 1)
    # Served through ONNX Runtime: fp32 rounding apart, the torch backbone's answer.
    assert np.allclose(ident.probabilities(test_images), expected.numpy(), atol=1e-5)
    results = ident.identify(test_images)
    assert [r["predictions"][0]["label"] for r in results] == ["cat"] * 3 + ["coffee"] * 3


def test_identify_scores_sorted_and_sum_at_most_one(backbone, tmp_path):
    labels = [f"character-{i}" for i in range(7)]
    torch.manual_seed(1)
    head = torch.nn.Linear(backbone.feature_dim, len(labels))
    write_model_dir(tmp_path / "seven", classifier_card("seven", backbone, labels, 0.3), head.state_dict(),
                    weights_name="weights.npz")
    ident = Identifier.load(tmp_path / "seven")
    faces = crops(skimage_data.astronaut(), 3, 5)
    faces.append(Image.new("RGBA", (40, 70), (200, 30, 30, 128)))  # odd size, transparency
    results = ident.identify(faces)
    assert len(results) == 4
    for result in results:
        scores = [p["score"] for p in result["predictions"]]
        assert len(scores) == 5
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) <= 1 + 1e-6
        assert all(p["label"] in labels for p in result["predictions"])
        assert result["unknown"] == (scores[0] < 0.3)
    assert ident.identify([]) == []


def test_unknown_threshold_comes_from_card(backbone, trained, tmp_path):
    _, model_dir = trained
    card = load_card(model_dir)
    with np.load(model_dir / card["weights"]) as saved:
        state = {k: saved[k] for k in saved.files}
    write_model_dir(tmp_path / "strict", dict(card, unknown_threshold=1.01), state, weights_name="weights.npz")
    result = Identifier.load(tmp_path / "strict").identify(crops(skimage_data.chelsea(), 1, 3))
    assert result[0]["unknown"] is True


def test_load_refuses_mismatched_files(backbone, trained, tmp_path):
    _, model_dir = trained
    card = load_card(model_dir)
    head = torch.nn.Linear(backbone.feature_dim, 2)
    write_model_dir(tmp_path / "other-backbone", dict(card, backbone_sha256="0" * 64), head.state_dict(),
                    weights_name="weights.npz")
    with pytest.raises(ModelError, match="retrain"):
        Identifier.load(tmp_path / "other-backbone")
    write_model_dir(tmp_path / "wrong-shape", card, torch.nn.Linear(10, 2).state_dict(), weights_name="weights.npz")
    with pytest.raises(ModelError, match="do not fit"):
        Identifier.load(tmp_path / "wrong-shape")
    write_model_dir(tmp_path / "cutout", dict(card, kind="cutout"), head.state_dict(), weights_name="weights.npz")
    with pytest.raises(ModelError, match="not a classifier"):
        Identifier.load(tmp_path / "cutout")


def test_preprocessing_keeps_colours(backbone):
    """No colour changes: a flat colour comes out as exactly (colour - mean) / std."""
    image = Image.new("RGB", (50, 80), (255, 0, 128))
    x = torch.from_numpy(face_array(image, 224, backbone.mean, backbone.std))
    assert x.shape == (3, 224, 224)
    for channel, value in enumerate((255, 0, 128)):
        expected = (value / 255 - backbone.mean[channel]) / backbone.std[channel]
        assert torch.allclose(x[channel], torch.full((224, 224), expected), atol=1e-5)
    assert PREPROCESSING_VERSION == 1
