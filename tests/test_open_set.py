"""The open-set decision: one scale for head and gallery, names that fold together, and its fit on val."""
import numpy as np
import pytest

from app.inference.open_set import HeadCalibration, rank, shared_scale
from app.storage.labels import name_key, spelling_in
from app.training import open_set_fit


def test_names_equal_but_for_case_and_width_are_one_key_and_keep_the_known_spelling():
    assert name_key("Lucy") == name_key("lucy") == name_key("ＬＵＣＹ") != name_key("Lucie")
    assert spelling_in("LUCY", ["eileen", "lucy"]) == "lucy"
    assert spelling_in("Tom", ["eileen", "lucy"]) == "Tom"


def test_one_face_never_adds_up_past_one_and_what_is_left_is_none_of_them():
    rng = np.random.default_rng(0)
    for _ in range(200):
        q = rng.uniform(0, 1, rng.integers(1, 12))
        p = shared_scale(q)
        assert p.sum() < 1.0 and (p >= 0).all()
        assert np.argsort(-p).tolist() == np.argsort(-q).tolist()  # the order of the names is kept
    # One candidate alone keeps its probability; two certain ones share.
    assert shared_scale([0.8])[0] == pytest.approx(0.8)
    assert shared_scale([0.999, 0.999]).tolist() == pytest.approx([0.4998, 0.4998], abs=1e-3)


def test_a_head_label_and_an_enrolled_name_that_differ_in_case_are_one_row():
    answer = rank([("lucy", 0.7, "head"), ("eileen", 0.1, "head"), ("Lucy", 0.95, "gallery")], threshold=0.5)
    labels = [p["label"] for p in answer["predictions"]]
    assert labels == ["lucy", "eileen"]  # one row, in the head's spelling, with the gallery's better score
    assert answer["predictions"][0]["source"] == "gallery" and answer["unknown"] is False
    assert sum(p["score"] for p in answer["predictions"]) <= 1.0


def test_an_older_card_keeps_its_softmax_and_threshold():
    calibration = HeadCalibration.from_card({"unknown_threshold": 0.87})
    assert calibration.method == "softmax" and calibration.threshold == 0.87
    probs = calibration.label_probabilities(np.array([[2.0, 0.0, 0.0]]))
    assert probs.sum() == pytest.approx(1.0) and probs[0, 0] == pytest.approx(np.exp(2) / (np.exp(2) + 2))


def test_fitting_on_val_finds_the_temperature_and_an_operating_point_between_known_and_outsiders():
    rng = np.random.default_rng(1)
    labels = 3
    centres = np.eye(labels, 16) * 4
    y_known = rng.integers(0, labels, 300)
    x_known = centres[y_known] + rng.normal(0, 1, (300, 16))
    x_out = rng.normal(0, 1, (150, 16))  # no label's direction: outsiders
    x_val = np.concatenate([x_known, x_out])
    y_val = np.concatenate([y_known, -np.ones(150, np.int64)])
    weight = centres * 3  # an over-confident head: logits three times too large
    logits = x_val @ weight.T
    kinds = ["drawn", "cascade"] * (len(x_val) // 2)
    y_train = rng.integers(0, labels, 600)
    x_train = centres[y_train] + rng.normal(0, 1, (600, 16))
    calibration, report = open_set_fit.calibrate(logits, x_val, y_val, kinds, x_train, y_train, labels)
    assert report["temperature"]["temperature"] > 1.5  # softens the over-confident logits
    for method in ("temperature", "nearest"):
        at_point = report[method]["val"]
        for kind in ("drawn", "cascade"):
            assert at_point[kind]["known_named_and_accepted"] > 0.85 and at_point[kind]["unknown_rejected"] > 0.85
    assert calibration.method in ("temperature", "nearest")
    best = max(report[m]["val_worst_rate"] for m in ("temperature", "nearest"))
    assert report[calibration.method]["val_worst_rate"] == best
