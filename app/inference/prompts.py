"""Faces as prompts for a cutout: keep the figures whose faces are known, drop what belongs to no one.

The network marks everything salient: a drawn jellyfish, a speech bubble or a prop is as salient
as the character. The page and the API already know where the faces are, so a region of the map
is kept only when a face lies on it. For one character, the figures that touch each other are
split along the picture's edges (watershed) between their faces.
"""
import cv2
import numpy as np

# A region is the face's when it covers this share of the face box (faces are drawn inside
# their figure, but a box is square and hair or a tilt leaves corners outside).
FACE_COVER = 0.2
GROW = 7  # pixels of soft edge kept around what survives, as postprocess does


def _regions(prob, threshold):
    hard = (prob >= threshold).astype(np.uint8)
    return cv2.connectedComponents(hard, connectivity=8)


def _on_face(labels, box):
    """Region labels (> 0) covering at least FACE_COVER of the face box."""
    x, y, w, h = (int(round(v)) for v in box)
    window = labels[max(0, y):max(0, y + h), max(0, x):max(0, x + w)]
    if not window.size:
        return set()
    found, counts = np.unique(window[window > 0], return_counts=True)
    return {int(k) for k, c in zip(found, counts) if c >= FACE_COVER * window.size}


def _keep(prob, region):
    grown = cv2.dilate(region.astype(np.uint8), np.ones((GROW, GROW), np.uint8)).astype(bool)
    return np.where(grown, prob, 0.0).astype(np.float32)


def keep_figures(prob, faces, threshold=0.5):
    """The map with every region that no face lies on set to 0. Unchanged when no face lies on
    any region (the detector's box missed: better everything than nothing)."""
    if not faces:
        return prob
    _, labels = _regions(prob, threshold)
    keep = set().union(*(_on_face(labels, box) for box in faces))
    if not keep:
        return prob
    return _keep(prob, np.isin(labels, sorted(keep)))


def one_figure(prob, rgb, face, faces=(), threshold=0.5):
    """The map of the one figure whose face is `face`: the regions on it, split from figures of
    the other `faces` that touch it along the picture's edges. Unchanged when no region lies on it."""
    _, labels = _regions(prob, threshold)
    mine = _on_face(labels, face)
    if not mine:
        return prob
    region = np.isin(labels, sorted(mine))
    rivals = [box for box in faces if tuple(box) != tuple(face) and _on_face(labels, box) & mine]
    if rivals:
        # Seeds: each face's box (inside the region); the watershed floods the picture's gradient
        # from them, so the split between two figures follows the outlines drawn between them.
        markers = np.zeros(prob.shape, np.int32)
        for k, box in enumerate([face, *rivals]):
            x, y, w, h = (int(round(v)) for v in box)
            seed = np.zeros(prob.shape, bool)
            seed[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = True
            markers[seed & region] = k + 2
        flooded = cv2.watershed(np.ascontiguousarray(rgb[..., :3]), markers)
        region &= flooded == 2
    return _keep(prob, region)
