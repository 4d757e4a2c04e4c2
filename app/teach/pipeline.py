"""From material to groups in one call: frames -> tracks -> embeddings -> groups, with progress
and a way to stop. Nothing is stored here: the caller (app/jobs/teach.py) writes the result whole.
"""
from dataclasses import dataclass

import numpy as np

from app.teach import grouping, material, tracks


@dataclass
class Face:
    track: int
    group: int  # -1: set aside
    seconds: float
    box: tuple
    crop: object  # PIL image
    vector: np.ndarray


@dataclass
class Result:
    faces: list
    tracks: int
    frames: int
    groups: int
    stopped: bool = False
    together: set = None  # pairs of tracks seen in one frame


def co_occurring(found):
    """Pairs of track indices seen in one frame (two people at once)."""
    by_frame = {}
    for t, track in enumerate(found):
        for sighting in track.sightings:
            by_frame.setdefault(sighting.frame, set()).add(t)
    pairs = set()
    for members in by_frame.values():
        members = sorted(members)
        pairs.update((a, b) for i, a in enumerate(members) for b in members[i + 1:])
    return pairs


def run(path, embedder, on_progress=None, every_s=material.EVERY_S, threshold=grouping.DISTANCE_THRESHOLD):
    """Teach material at `path` -> Result. `on_progress(stage, done, total)` may return False to stop
    (Result.stopped, nothing else to use). total is an estimate for frames of a video."""
    estimate = _estimate_frames(path, every_s)

    def frame_done(frame):
        if on_progress is not None:
            return on_progress("frames", frame.index + 1, max(estimate, frame.index + 1))
        return True

    found, stopped = tracks.link(material.frames(path, every_s), on_frame=frame_done)
    frame_count = max((s.frame for t in found for s in t.sightings), default=-1) + 1
    if stopped:
        return Result([], len(found), frame_count, 0, stopped=True)
    kept = [(t, s) for t, track in enumerate(found) for s in track.kept]
    crops = [s.crop for _, s in kept]
    vectors = []
    for start in range(0, len(crops), 64):
        vectors.append(embedder.from_images(crops[start:start + 64]))
        if on_progress is not None and on_progress("faces", min(len(crops), start + 64), len(crops)) is False:
            return Result([], len(found), frame_count, 0, stopped=True)
    vectors = np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)
    owners = [t for t, _ in kept]
    if not kept:
        return Result([], 0, frame_count, 0)
    per_track = grouping.track_vectors(vectors, owners, len(found))
    sizes = [len(track.kept) for track in found]
    together = co_occurring(found)
    labels = grouping.group(per_track, sizes, together, threshold)
    faces = [Face(t, int(labels[t]), s.seconds, s.box, s.crop, v) for (t, s), v in zip(kept, vectors)]
    return Result(faces, len(found), frame_count, int(labels.max()) + 1 if len(labels) else 0, together=together)


def _estimate_frames(path, every_s):
    """About how many frames the material gives (for progress)."""
    try:
        kind = material.kind_of(path)
        if kind == "video":
            return max(1, int(material.probe_video(path)[2] / every_s))
        if kind == "folder":
            return max(1, sum(1 for _ in material.picture_paths(path)))
    except material.MaterialError:
        pass
    return 1
