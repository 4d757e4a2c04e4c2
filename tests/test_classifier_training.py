"""Head training end to end on a handful of demo-cast crops, threshold calibration, evaluation."""
import json

import numpy as np
import pytest
import torch
from conftest import read_image
from PIL import Image

from app.demo_data import compose
from app.demo_data import renpy_cast as demo_cast
from app.inference.face_crops import crop_face
from app.inference.identify import Identifier
from app.training import classifier_train, open_set_fit
from app.training.classifier_eval import metrics_from_results

needs_art = pytest.mark.skipif(not demo_cast.is_fetched(),
                               reason="demo-cast art missing: run scripts/setup.sh --dev")


def _write_split(root, split, per_sprite, seed):
    """Face crops cut at the known boxes of composites of each sprite of a demo_cast split."""
    spec = demo_cast.SPLITS[split]
    sprites = demo_cast.load_sprites(keys=spec["sprites"])
    photos = demo_cast.load_backgrounds(names=spec["backgrounds"])
    rng = np.random.default_rng(seed)
    n = 0
    for sprite in sprites:
        written = 0
        while written < per_sprite:
            photo = photos[sorted(photos)[rng.integers(len(photos))]]
            background = compose.photo_crop(rng, photo, (384, 288))
            comp = compose.compose(rng, [sprite], background, (384, 288))
            for character, box in comp.faces:
                folder = root / split / character
                folder.mkdir(parents=True, exist_ok=True)
                crop_face(comp.image, box).save(folder / f"{n:03d}.png")
                n += 1
                written += 1
    return n


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    if not demo_cast.is_fetched():
        pytest.skip("demo-cast art missing: run scripts/setup.sh --dev")
    root = tmp_path_factory.mktemp("faces")
    _write_split(root, "train", 3, 1)  # 7 sprites x 3: a handful per character
    _write_split(root, "val", 1, 2)
    _write_split(root, "test", 1, 3)  # unseen expressions, outfit and backgrounds
    return root


def test_threshold_without_val_outsiders_rejects_the_allowed_share():
    scores = np.linspace(0.40, 0.99, 100)
    t = open_set_fit.calibrate_threshold(scores, 0.05)
    assert (scores < t).mean() == pytest.approx(0.05)
    assert open_set_fit.calibrate_threshold(scores, 0.0) == pytest.approx(0.40)
    # The same through the operating-point rule when val holds no outsider.
    y = np.zeros(100, np.int64)
    threshold, _ = open_set_fit.choose_threshold(scores, y, y, ["drawn"] * 100, 0.05)
    assert threshold == pytest.approx(t)


def test_augmentation_keeps_colours():
    face = Image.new("RGB", (120, 120), (230, 60, 140))  # a pink-haired character's colour
    face.paste((40, 200, 90), (30, 30, 90, 90))
    for k in range(10):
        out = np.asarray(classifier_train.augment(face, np.random.default_rng([0, k]))).reshape(-1, 3)
        colours = {tuple(int(v) for v in c) for c in out[::97]}
        # Every sampled pixel stays near one of the two colours or a blend of them (edges, blur).
        pink, green = np.array([230, 60, 140]), np.array([40, 200, 90])
        for c in colours:
            t = np.clip(np.dot(np.array(c) - green, pink - green) / np.dot(pink - green, pink - green), 0, 1)
            assert np.linalg.norm(np.array(c) - (green + t * (pink - green))) < 40


@needs_art
def test_head_trained_end_to_end_beats_chance(small_data, tmp_path, runner):
    torch.set_num_threads(1)
    model_dir = tmp_path / "model"
    result = runner.invoke(args=["train", "classifier", str(small_data), "--out", str(model_dir),
                                 "--name", "tiny", "--augment", "1", "--patience", "10",
                                 "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    card = json.loads((model_dir / "card.json").read_text())
    assert card["labels"] == ["eileen", "lucy", "sylvie"]
    assert card["backbone"] == "efficientnet_lite0" and card["kind"] == "classifier"
    assert 1 / 3 <= card["unknown_threshold"] <= 1
    assert card["training"]["history"] and "train classifier" in card["training"]["command"]
    # Held-out crops (unseen expressions, outfit and backgrounds) through the serving code.
    assert card["metrics"]["cast_faces"] >= 6
    assert card["metrics"]["top1"] > 0.5, card["metrics"]  # chance is 1/3
    assert (tmp_path / "cache" / "efficientnet_lite0").is_dir()

    identifier = Identifier.load(model_dir)
    out = identifier.identify([read_image(next((small_data / "test" / "sylvie").glob("*.png")))])
    assert len(out[0]["predictions"]) == 3

    # The feature cache makes the second run a cache-only affair.
    again = runner.invoke(args=["train", "classifier", str(small_data), "--out", str(tmp_path / "m2"),
                                "--augment", "1", "--patience", "10", "--cache", str(tmp_path / "cache")])
    assert again.exit_code == 0 and " 0 computed" in again.output, again.output

    report_dir = tmp_path / "eval"
    result = runner.invoke(args=["evaluate", "classifier", str(model_dir), str(small_data),
                                 "--out", str(report_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads((report_dir / "report.json").read_text())
    assert report["top1"] == card["metrics"]["top1"]
    for name in ("confusion.png", "training_curve.png"):
        assert read_image(report_dir / name).size[0] > 200


def test_metrics_count_outsiders_and_unknowns():
    results = [{"predictions": [{"label": "a", "score": 0.9}, {"label": "b", "score": 0.1}], "unknown": False},
               {"predictions": [{"label": "b", "score": 0.5}, {"label": "a", "score": 0.5}], "unknown": True},
               {"predictions": [{"label": "a", "score": 0.6}, {"label": "b", "score": 0.4}], "unknown": True},
               {"predictions": [{"label": "a", "score": 0.99}, {"label": "b", "score": 0.01}], "unknown": False}]
    m = metrics_from_results(results, ["a", "a", "_unknown", "zed"], ["a", "b"], threshold=0.55)
    assert m["cast_faces"] == 2 and m["outside_faces"] == 2
    assert m["top1"] == 0.5 and m["top5"] == 1.0 and m["false_unknown_rate"] == 0.5
    assert m["unknown_rejection_rate"] == 0.5
    assert m["per_class"]["a"] == {"support": 2, "precision": 1.0, "recall": 0.5, "flagged_unknown": 0.5}
    # Best scores: cast 0.9 and 0.5, outsiders 0.6 and 0.99.
    tradeoff = {row["threshold"]: (row["known_called_unknown"], row["outsiders_rejected"])
                for row in m["unknown_tradeoff"]}
    assert tradeoff[0.5] == (0.0, 0.0) and tradeoff[0.55] == (0.5, 0.0) and tradeoff[0.7] == (0.5, 0.5)
    assert tradeoff[0.95] == (1.0, 0.5)
    assert m["confusion"]["counts"] == [[1, 0, 1], [0, 0, 0], [1, 0, 1]]


def test_cli_rejects_a_folder_without_labels(runner, tmp_path):
    (tmp_path / "data").mkdir()
    result = runner.invoke(args=["train", "classifier", str(tmp_path / "data")])
    assert result.exit_code == 1 and "at least two labels" in result.output
    assert "Traceback" not in result.output
