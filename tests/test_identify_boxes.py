"""The shipped demo head on boxes as people get them: the detector's tight box and a box dragged by
hand around a face of the held-out test split are named right and accepted.

Sylvie's held-out green outfit is left out here: it is the head's known miss (about 4 in 10 of
her drawn boxes are answered "unknown"; models/demo-classifier/card.json, metrics.per_kind)."""
import numpy as np
import pytest
from conftest import MODELS, needs_classifier

from app.demo_data import renpy_cast
from app.inference import faces
from app.inference.identify import Identifier
from app.training import crop_kinds

needs_cast = pytest.mark.skipif(not renpy_cast.is_fetched(),
                                reason="demo cast not fetched (scripts/setup.sh does it)")


@pytest.fixture(scope="module")
def identifier():
    return Identifier.load(MODELS / "demo-classifier")


def held_out_faces(count=3, skip=("sylvie",)):
    """(character, picture, known box, the cascade's box) of the first test-split faces the cascade finds."""
    out = []
    for comp in renpy_cast.composites("test", 30, seed=7):
        known = [box for _, box in comp.faces]
        for box, j in crop_kinds.match_detections(faces.detect_faces(comp.image), known):
            if j is not None and comp.faces[j][0] not in skip:
                out.append((comp.faces[j][0], comp.image, known[j], box))
        if len(out) >= count:
            return out[:count]
    return out


@needs_cast
@needs_classifier
def test_tight_and_dragged_boxes_of_held_out_faces_are_named_and_accepted(identifier):
    cases = held_out_faces()
    assert len(cases) == 3
    rng = np.random.default_rng(3)
    crops, truth = [], []
    for character, image, known, detected in cases:
        crops.append(crop_kinds.cut(image, detected))  # what the page sends for a detected face
        for _ in range(2):  # two boxes a person might drag: tight to generous, oblong, off centre
            crops.append(crop_kinds.cut(image, crop_kinds.drawn_box(rng, known)))
        truth += [character] * 3
    answers = identifier.identify(crops)
    got = [(a["predictions"][0]["label"], a["unknown"]) for a in answers]
    assert got == [(name, False) for name in truth]
    assert all(sum(p["score"] for p in a["predictions"]) <= 1.0 for a in answers)
