"""Face crops cut the ways the product cuts them, from pictures whose face boxes are known.

Three kinds (README, "Crops as the product makes them"):
- `cascade`: the exact box lbpcascade_animeface finds on the whole picture (server-side cv2 with
  the page's settings, app/inference/faces.py), no margin: what the page sends for a detected
  face. A detection that matches no face is a box on no face, labelled _unknown.
- `drawn`: a box a person drags around a face: its side 0.7-1.6 of the face box's, width and
  height drawn apart (not square), its centre shifted by up to a fifth of the side.
- `known`: the known face box grown by DEFAULT_MARGIN on each side, square (the old data set).
Crops are the box's own pixels clipped to the picture, as the page's canvas cuts them.
"""
import numpy as np
from PIL import Image

from app.inference import faces
from app.inference.face_crops import DEFAULT_MARGIN, crop_face
from app.training.face_dataset import CROP_KINDS as KINDS  # noqa: F401  (re-exported)
from app.training.face_dataset import UNKNOWN_LABEL

DRAWN_SCALE = (0.7, 1.6)  # side of a drawn box over the face box's
DRAWN_ASPECT = (0.75, 1.33)  # width over height of a drawn box
DRAWN_SHIFT = 0.2  # centre shift, as a share of the side, each way
MATCH_IOU = 0.25  # a detection this close to a known face box is that face


def iou(a, b):
    """Intersection over union of boxes (x, y, w, h)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / max(1e-9, a[2] * a[3] + b[2] * b[3] - inter)


def cut(rgb, box):
    """The pixels of box (x, y, w, h) clipped to the picture, as a PIL RGB image (None if empty)."""
    height, width = rgb.shape[:2]
    x, y, w, h = box
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1, :3]))


def drawn_box(rng, box):
    """A hand-drawn box around face box (x, y, w, h): scaled, stretched and shifted (module docstring)."""
    x, y, w, h = box
    side = max(w, h) * rng.uniform(*DRAWN_SCALE)
    aspect = float(np.exp(rng.uniform(*np.log(DRAWN_ASPECT))))
    bw, bh = side * np.sqrt(aspect), side / np.sqrt(aspect)
    cx = x + w / 2 + rng.uniform(-DRAWN_SHIFT, DRAWN_SHIFT) * side
    cy = y + h / 2 + rng.uniform(-DRAWN_SHIFT, DRAWN_SHIFT) * side
    return (cx - bw / 2, cy - bh / 2, bw, bh)


def match_detections(detections, known):
    """[(detection, index of the known box it is, or None)], each known box taken at most once."""
    pairs = sorted(((iou(d, k), i, j) for i, d in enumerate(detections) for j, k in enumerate(known)),
                   reverse=True)
    owner, taken = {}, set()
    for score, i, j in pairs:
        if score < MATCH_IOU or i in owner or j in taken:
            continue
        owner[i] = j
        taken.add(j)
    return [(d, owner.get(i)) for i, d in enumerate(detections)]


def cascade_crops(rgb, known, labels, all_faces_known):
    """(label, crop) for every cascade detection on the picture: the matched face's label, or
    _unknown for a box on no face. When some face of the picture has no known box (a face cut by
    the edge), unmatched detections are dropped: they might be that face."""
    out = []
    for box, j in match_detections(faces.detect_faces(rgb), known):
        if j is None and not all_faces_known:
            continue
        crop = cut(rgb, box)
        if crop is not None:
            out.append((labels[j] if j is not None else UNKNOWN_LABEL, crop))
    return out


def kind_crops(rng, rgb, box, kind, margin=DEFAULT_MARGIN):
    """The crop of one known face box for kind `drawn` or `known` (None if it falls off the picture)."""
    if kind == "known":
        return crop_face(rgb, box, margin)
    if kind == "drawn":
        return cut(rgb, drawn_box(rng, box))
    raise ValueError(f"no single-box crop for kind {kind!r}")
