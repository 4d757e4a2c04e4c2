"""Anime face detection with lbpcascade_animeface, same parameters as the browser."""
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from app.config import ROOT

CASCADE_PATH = ROOT / "static" / "vendor" / "lbpcascade_animeface.xml"
# The cascade author's settings; the page receives the same ones (DETECTOR).
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_SIZE = 24
# Detection runs on a copy scaled so its longer side is at most this; boxes map back.
MAX_DETECT_SIDE = 1024
# What the browser's detector needs, sent with the page so both sides always agree.
DETECTOR = {"scaleFactor": SCALE_FACTOR, "minNeighbors": MIN_NEIGHBORS, "minSize": MIN_SIZE,
            "maxSide": MAX_DETECT_SIDE}


class CascadeMissing(RuntimeError):
    pass


@lru_cache(maxsize=4)
def _cascade(path):
    if not Path(path).exists():
        raise CascadeMissing(f"{path} is missing: run scripts/setup.sh to install the face cascade")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise CascadeMissing(f"{path} could not be read as a cascade")
    return cascade


def cascade_available(path=None):
    """True if the face cascade (CASCADE_PATH unless given) can be loaded."""
    try:
        _cascade(str(path or CASCADE_PATH))
        return True
    except CascadeMissing:
        return False


def detect_faces(rgb, path=CASCADE_PATH):
    """Face boxes [(x, y, w, h), ...] in pixels of `rgb` (H x W x 3 or 4 uint8), largest first."""
    h, w = rgb.shape[:2]
    scale = min(1.0, MAX_DETECT_SIDE / max(h, w))
    gray = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        # At least one pixel each way: a 2048:1 sliver scales to 1024 x 0.5, which cv2 refuses.
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    found = _cascade(str(path)).detectMultiScale(
        gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(MIN_SIZE, MIN_SIZE))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in found]
    return sorted(boxes, key=lambda b: -b[2] * b[3])
