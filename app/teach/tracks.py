"""Face tracks: the cascade's faces in neighbouring frames of one scene that overlap are one track
(most likely one character); near-duplicate crops within a track collapse to one.
"""
from dataclasses import dataclass, field

from app.inference.face_crops import DEFAULT_MARGIN, crop_face, dhash, hamming
from app.inference.faces import detect_faces

# Crops and near-duplicate hashes come from app/inference/face_crops.py, the one place they are
# made (as `flask dataset faces` makes them too).
MARGIN = DEFAULT_MARGIN  # the margin the gallery's enrolled crops have

LINK_IOU = 0.3  # a face moves and grows little in EVERY_S: boxes of one face overlap at least this
GAP_FRAMES = 1  # a face the cascade misses in one frame keeps its track
DUPLICATE_BITS = 6  # dHash distance (of 64 bits) under which two crops of a track are one
MAX_FACES_PER_TRACK = 6  # kept crops per track, spread over its length


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter)


@dataclass
class Sighting:
    frame: int
    seconds: float
    box: tuple
    crop: object  # PIL image (the face with the gallery's margin); None once found a near-duplicate
    hash: int = 0


@dataclass
class Track:
    scene: int
    sightings: list = field(default_factory=list)  # every detection, in order
    kept: list = field(default_factory=list)  # the sightings left after near-duplicates collapse

    @property
    def last(self):
        return self.sightings[-1]


def link(frames, detect=detect_faces, margin=MARGIN, on_frame=None):
    """Tracks of the faces in `frames` (material.Frame, in order); `on_frame(frame)` after each may
    return False to stop early. Returns (tracks, stopped). A sighting's crop is kept only while it is
    no near-duplicate of its track's kept crops, so memory grows with distinct faces, not frames."""
    tracks, open_tracks, scene = [], [], -1
    stopped = False
    for frame in frames:
        if frame.cut:
            scene += 1
            open_tracks = []
        open_tracks = [t for t in open_tracks if frame.index - t.last.frame <= GAP_FRAMES + 1]
        boxes = detect(frame.rgb)
        pairs = sorted(((iou(t.last.box, b), ti, bi) for ti, t in enumerate(open_tracks)
                        for bi, b in enumerate(boxes)), reverse=True)
        taken_t, taken_b, owner = set(), set(), {}
        for overlap, ti, bi in pairs:  # greedy: the best overlaps first, each track and box once
            if overlap < LINK_IOU:
                break
            if ti not in taken_t and bi not in taken_b:
                taken_t.add(ti)
                taken_b.add(bi)
                owner[bi] = open_tracks[ti]
        for bi, box in enumerate(boxes):
            track = owner.get(bi)
            if track is None:
                track = Track(scene)
                tracks.append(track)
                open_tracks.append(track)
            sighting = Sighting(frame.index, frame.seconds, tuple(int(v) for v in box),
                                crop_face(frame.rgb, box, margin))
            track.sightings.append(sighting)
            keep_if_new(track, sighting)
        if on_frame is not None and on_frame(frame) is False:
            stopped = True
            break
    for track in tracks:
        spread(track)
    return tracks, stopped


def keep_if_new(track, sighting, bits=DUPLICATE_BITS):
    """Keep `sighting`'s crop in `track.kept` unless it is within `bits` (dHash) of one kept before;
    a near-duplicate's crop is let go."""
    sighting.hash = dhash(sighting.crop)
    if all(hamming(sighting.hash, k.hash) > bits for k in track.kept):
        track.kept.append(sighting)
    else:
        sighting.crop = None


def spread(track, most=MAX_FACES_PER_TRACK):
    """At most `most` kept crops, spread evenly over the track."""
    kept = track.kept
    if len(kept) > most:
        step = (len(kept) - 1) / (most - 1)
        track.kept = [kept[round(i * step)] for i in range(most)]
    return track
