"""Face crops cut the ways the product cuts them: the cascade's boxes, drawn boxes, known boxes."""
import numpy as np
import pytest

from app.demo_data import renpy_cast
from app.training import crop_kinds, demo_faces
from app.training.face_dataset import UNKNOWN_LABEL, crop_kind, write_crops

needs_cast = pytest.mark.skipif(not renpy_cast.is_fetched(),
                                reason="demo cast not fetched (scripts/setup.sh does it)")


def test_drawn_boxes_range_from_tight_to_generous_oblong_and_off_centre():
    rng = np.random.default_rng(0)
    face = (100, 80, 40, 40)
    boxes = [crop_kinds.drawn_box(rng, face) for _ in range(400)]
    sides = np.array([np.sqrt(w * h) for _, _, w, h in boxes]) / 40
    aspects = np.array([w / h for _, _, w, h in boxes])
    shifts = np.array([abs(x + w / 2 - 120) / max(w, h) for x, _, w, h in boxes])
    assert sides.min() < 0.75 and sides.max() > 1.5  # 0.7-1.6 of the face's side
    assert aspects.min() < 0.8 and aspects.max() > 1.25 and (np.abs(aspects - 1) > 0.02).mean() > 0.9
    assert 0.1 < shifts.max() <= 0.2 * 1.6 / 0.75  # up to a fifth of the drawn side


def test_detections_match_the_nearest_known_face_once_and_strays_match_none():
    known = [(10, 10, 50, 50), (200, 10, 50, 50)]
    found = [(205, 12, 46, 46), (12, 8, 52, 52), (120, 150, 40, 40)]
    matched = crop_kinds.match_detections(found, known)
    assert [j for _, j in matched] == [1, 0, None]


@needs_cast
def test_cascade_crops_of_a_composite_are_the_detectors_own_boxes_with_their_labels():
    comps = list(renpy_cast.composites("test", 12, seed=0))
    got = []
    for comp in comps:
        boxes, labels = [b for _, b in comp.faces], [c for c, _ in comp.faces]
        got += crop_kinds.cascade_crops(comp.image, boxes, labels, len(boxes) == len(comp.figures))
    named = [label for label, _ in got if label != UNKNOWN_LABEL]
    assert len(named) >= 8 and set(named) <= {"eileen", "lucy", "sylvie"}
    # Tight boxes: a cascade crop is about the face box, far smaller than the 30%-margin crop.
    comp = next(c for c in comps if c.faces)
    box = comp.faces[0][1]
    tight = crop_kinds.cut(comp.image, box)
    known = crop_kinds.kind_crops(None, comp.image, box, "known")
    assert known.width > tight.width * 1.3


@needs_cast
def test_a_data_set_of_all_kinds_names_each_file_by_its_kind(tmp_path):
    crops = list(demo_faces.demo_face_crops("val", 6, seed=0, outsider_share=0.34, non_face_share=1.0,
                                            kinds=crop_kinds.KINDS))
    stats = write_crops(crops, tmp_path, dedupe_bits=-1)
    assert set(stats["kinds"]) == set(crop_kinds.KINDS)
    files = sorted(tmp_path.rglob("*.png"))
    assert {crop_kind(p) for p in files} == set(crop_kinds.KINDS)
    # Drawn and known crops exist for every face and every box on no face.
    assert sum(stats["kinds"]["drawn"].values()) == sum(stats["kinds"]["known"].values())
    assert stats["kinds"]["drawn"].get(UNKNOWN_LABEL, 0) >= 2  # an outsider and boxes on no face


@needs_cast
def test_a_head_trained_on_every_kind_is_calibrated_and_scored_per_kind(tmp_path, runner):
    import json

    from app.inference.identify import Identifier
    data = tmp_path / "faces"
    demo_faces.build_demo_faces(data, {"train": 10, "val": 8, "test": 8}, seed=0, kinds=crop_kinds.KINDS,
                                non_face_share=0.5)
    result = runner.invoke(args=["train", "classifier", str(data), "--out", str(tmp_path / "model"),
                                 "--augment", "0", "--patience", "5", "--cache", str(tmp_path / "cache"), "--loco"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card["open_set"]["method"] in ("temperature", "nearest")
    assert card["unknown_threshold"] == card["open_set"]["threshold"]
    assert set(card["metrics"]["per_kind"]) == set(crop_kinds.KINDS)
    # Leaving each character out, its own decision is fitted again and scores the left-out faces.
    loco = card["metrics"]["leave_one_character_out"]
    assert set(loco) == set(card["labels"]) and all(0 <= v["left_out_flagged_unknown"] <= 1 for v in loco.values())
    assert (tmp_path / "model" / "tradeoff-test.png").is_file() and (tmp_path / "model" / "tradeoff-val.png").is_file()
    # The served head gives the same decision the card describes.
    identifier = Identifier.load(tmp_path / "model")
    assert identifier.calibration.method == card["open_set"]["method"]
    assert identifier.threshold == pytest.approx(card["open_set"]["threshold"])
