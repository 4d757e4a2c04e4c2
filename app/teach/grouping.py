"""Tracks grouped by character, without being told how many there are.

Each track is the mean of its faces' gallery embeddings (app/inference/gallery.py). Tracks are
joined by average-linkage agglomerative clustering on cosine distance (SciPy), cut at a distance
threshold calibrated on held-out characters; two tracks seen in the same frame are two people,
so their distance is set to the largest there is before clustering. A group with too few faces
to stand for a character is set aside (label -1), never forced into another.
"""
import numpy as np

from app.inference.gallery import normalise

# Calibrated by `scripts/teach_bench.py --calibrate` on the val-a episode (bench val characters:
# Live2D izumi and miku, the cast's val sprites), never on the test episodes' characters: the
# smallest threshold with the best adjusted Rand index on placed faces among those setting aside
# at most 10% of faces (0.275 and 0.300 tie at 0.994, 0.4% set aside).
DISTANCE_THRESHOLD = 0.275
MIN_GROUP_FACES = 3  # fewer kept faces than this (a glimpse, a false detection): set aside
APART = 2.0  # the largest cosine distance: "never the same character"


def track_vectors(face_vectors, owners, n_tracks):
    """Unit mean embedding per track from its faces' embeddings (`owners[i]`: face i's track)."""
    d = face_vectors.shape[1]
    sums = np.zeros((n_tracks, d), np.float64)
    np.add.at(sums, np.asarray(owners), face_vectors)
    return normalise(sums)


def group(vectors, sizes, together=(), threshold=DISTANCE_THRESHOLD, min_faces=MIN_GROUP_FACES):
    """Group labels 0.. per track (-1 set aside), numbered by group size, largest first.

    vectors: T x d unit track embeddings; sizes: kept faces per track; together: pairs of track
    indices seen in one frame (cannot be one character)."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, np.int64)
    # SciPy here only: the web process imports this module for `typical` and `diverse`, and the
    # app's image leaves SciPy out (requirements-build.txt); teach jobs run in the workers' image.
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if n == 1:
        raw = np.zeros(1, np.int64)
    else:
        distance = np.clip(1.0 - vectors @ vectors.T, 0.0, APART)
        for a, b in together:
            distance[a, b] = distance[b, a] = APART
        np.fill_diagonal(distance, 0.0)
        tree = linkage(squareform(distance, checks=False), method="average")
        raw = fcluster(tree, t=threshold, criterion="distance") - 1
    sizes = np.asarray(sizes)
    totals = {c: int(sizes[raw == c].sum()) for c in np.unique(raw)}
    order = sorted((c for c in totals if totals[c] >= min_faces), key=lambda c: (-totals[c], c))
    number = {c: i for i, c in enumerate(order)}
    return np.array([number.get(c, -1) for c in raw], np.int64)


def typical(vectors, k):
    """Indices of the `k` rows nearest the rows' mean (the group's most typical faces), nearest first."""
    centre = normalise(vectors.mean(axis=0, keepdims=True))[0]
    return [int(i) for i in np.argsort(-(vectors @ centre))[:k]]


def diverse(vectors, k):
    """Indices of `k` rows spread over the group: the most typical first, then each time the row
    farthest from all chosen (farthest-point sampling), so enrolment covers poses, not one pose."""
    if len(vectors) <= k:
        return list(range(len(vectors)))
    chosen = typical(vectors, 1)
    nearest = vectors @ vectors[chosen[0]]
    while len(chosen) < k:
        nxt = int(np.argmin(nearest))
        chosen.append(nxt)
        nearest = np.maximum(nearest, vectors @ vectors[nxt])
    return chosen
