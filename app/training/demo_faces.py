"""The demo face data set: crops of demo-cast faces cut at their known boxes, and of outsiders.

Layout out: OUT/{train,val,test}/<character or _unknown>/*.png plus OUT/dataset.json, which
`flask train classifier` records in the model card.

The cast is nine characters: the three of the Ren'Py games and the six Live2D characters
(app.demo_data.live2d). Held-out rule for the classifier, written before it was trained on them:
- Ren'Py: the sprite splits of renpy_cast (an expression, a pose and a whole outfit never trained
  on, and VAL_HELD_OUT_SPRITES below for validation), each split on its own background photos.
- Live2D: every one of the six is a known character, split by pose number as the renders are
  (pose_id % 10: 0-7 train, 8 val, 9 test), so test faces are poses the head never saw. Haruto,
  whom the renders' own rule holds out whole for the cutout networks, is split by pose here too.
- Whole characters never seen: the amoebax outsiders of the test split (never in training or
  calibration), and leave-one-character-out over the nine (`train classifier --loco`).
- Not a face at all (`non_face_share`): face-sized crops of the same composites placed away from
  every face (background, hair, clothes, hands), labelled _unknown, so the head learns that a
  box on something else is no one; each split's come from its own composites only.
"""
from pathlib import Path

import numpy as np

from app.demo_data import compose, outsiders
from app.demo_data import renpy_cast as demo_cast
from app.demo_data.live2d.dataset import POSE_FOLDS
from app.inference.face_crops import DEFAULT_MARGIN
from app.storage.files import staged_dir, write_json
from app.training import crop_kinds
from app.training.face_dataset import UNKNOWN_LABEL, FaceCrop, write_crops

_OUTSIDER_SALT = {"train": 77_001, "val": 77_002, "test": 77_003}
_CAST_SALT = {"train": 55_001, "val": 55_002}
_LIVE2D_SALT = {"train": 99_001, "val": 99_002, "test": 99_003}
_NON_FACE_SALT = {"train": 33_001, "val": 33_002, "test": 33_003}
_DRAWN_SALT = {"train": 44_001, "val": 44_002, "test": 44_003}
LIVE2D_FOLDS = {"train": range(0, 8), "val": (8,), "test": (9,)}  # pose_id % POSE_FOLDS


def live2d_figures(split, cache_dir=None):
    """The Live2D figures of a face-data split (the rule in the module docstring)."""
    from app.demo_data import live2d
    figures = live2d.load(cache_dir or live2d.DEFAULT_CACHE, "all")
    return [f for f in figures if f.meta["pose_id"] % POSE_FOLDS in LIVE2D_FOLDS[split]]

# Validation made as hard as the test: one training expression per character (where it has
# two or more) is moved out of training and shown only in validation, so the unknown threshold
# is calibrated on faces the head has not seen, as the test's unseen expressions and outfit are.
VAL_HELD_OUT_SPRITES = ("eileen vhappy", "sylvie blue surprised")


def demo_sprite_plan(split, hold_out_val=True):
    """(sprite keys, background names) of a demo split, with VAL_HELD_OUT_SPRITES moved to val."""
    spec = demo_cast.SPLITS[split]
    sprites = tuple(spec["sprites"])
    if hold_out_val and split == "train":
        sprites = tuple(k for k in sprites if k not in VAL_HELD_OUT_SPRITES)
    if hold_out_val and split == "val":
        # Held-out expressions for the characters that have one; the rest as before.
        held = {k.split(" ")[0] for k in VAL_HELD_OUT_SPRITES}
        sprites = VAL_HELD_OUT_SPRITES + tuple(k for k in sprites if k.split(" ")[0] not in held)
    return sprites, tuple(spec["backgrounds"])


def _overlap(a, b):
    """Intersection of boxes (x, y, w, h) over the smaller one's area."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, min(a[2] * a[3], b[2] * b[3]))


def non_face_box(rng, comp, tries=30, max_overlap=0.15):
    """A face-sized box of `comp` covering at most `max_overlap` of any face box (of its own
    area and of the face's), or None when the picture has no such place."""
    h, w = comp.image.shape[:2]
    sides = [b[2] for _, b in comp.faces] or [h // 5]
    for _ in range(tries):
        side = int(min(min(h, w) - 1, max(16, rng.choice(sides) * rng.uniform(0.7, 1.4))))
        box = (int(rng.integers(0, w - side)), int(rng.integers(0, h - side)), side, side)
        if all(_overlap(box, face) <= max_overlap for _, face in comp.faces):
            return box
    return None


def _crops(comps, label_of, source, margin, rng=None, non_face_share=0.0, kinds=("known",), kind_rng=None):
    """FaceCrops of each composite's faces in every crop kind, and of no face (`non_face_share`).

    `rng` draws only the non-face boxes and `kind_rng` only the drawn boxes, so a data set of
    known crops alone is the same as before kinds existed."""
    for comp in comps:
        labels = [label_of(character) for character, _ in comp.faces]
        boxes = [box for _, box in comp.faces]
        for kind in kinds:
            if kind == "cascade":
                every_face_known = len(comp.faces) == len(comp.figures)
                for label, crop in crop_kinds.cascade_crops(comp.image, boxes, labels, every_face_known):
                    yield FaceCrop(crop, label, f"cascade {source}", kind)
                continue
            for label, box in zip(labels, boxes):
                crop = crop_kinds.kind_crops(kind_rng, comp.image, box, kind, margin)
                if crop is not None:
                    yield FaceCrop(crop, label, source, kind if kinds != ("known",) else None)
        if non_face_share and rng.random() < non_face_share:
            box = non_face_box(rng, comp)
            if box is None:
                continue
            for kind in kinds:
                if kind == "cascade":
                    continue  # the cascade's own boxes on no face come with its detections above
                crop = crop_kinds.kind_crops(kind_rng, comp.image, box, kind, margin)
                if crop is not None:
                    yield FaceCrop(crop, UNKNOWN_LABEL, f"non-face {source}", kind if kinds != ("known",) else None)


def demo_face_crops(split, count, seed=0, margin=DEFAULT_MARGIN, cast_cache=None,
                    outsider_cache=outsiders.DEFAULT_CACHE, outsider_share=0.25, size=(512, 384),
                    hold_out_val=True, live2d_share=0.0, live2d_cache=None, non_face_share=0.0,
                    kinds=("known",)):
    """Yield FaceCrops cut at the known face boxes of demo-cast composites of `split`, plus
    Live2D characters (`live2d_share` of the composites) and outsiders (`outsider_share`), and
    from `non_face_share` of the cast's composites a crop of no face (_unknown); each face is cut
    in every one of `kinds` (app/training/crop_kinds.py)."""
    non_face_rng = np.random.default_rng(seed + _NON_FACE_SALT[split])
    cut = {"kinds": tuple(kinds), "kind_rng": np.random.default_rng(seed + _DRAWN_SALT[split])}
    cast_cache = cast_cache or demo_cast.DEFAULT_CACHE
    n_outsiders = round(count * outsider_share)
    n_live2d = round(count * live2d_share)
    n_cast = count - n_outsiders - n_live2d
    if split == "test" or not hold_out_val:
        # The test split is exactly demo_cast's, composed by its own generator.
        comps = demo_cast.composites(split, n_cast, seed, size, cache_dir=cast_cache)
    else:
        keys, backgrounds = demo_sprite_plan(split, hold_out_val)
        rng = np.random.default_rng(seed + _CAST_SALT[split])
        comps = compose.composites(rng, demo_cast.load_sprites(cast_cache, keys),
                                   demo_cast.load_backgrounds(cast_cache, backgrounds), n_cast, size)
    yield from _crops(comps, lambda c: c, f"demo-cast {split}", margin, non_face_rng, non_face_share, **cut)
    photos = demo_cast.load_backgrounds(cast_cache, demo_cast.SPLITS[split]["backgrounds"])
    if n_live2d > 0:
        rng = np.random.default_rng(seed + _LIVE2D_SALT[split])
        comps = compose.composites(rng, live2d_figures(split, live2d_cache), photos, n_live2d, size)
        yield from _crops(comps, lambda c: c, f"live2d {split}", margin, non_face_rng, non_face_share, **cut)
    if n_outsiders <= 0:
        return
    # Outsiders go through the same composer, one at a time, on the split's own backgrounds,
    # so that nothing but the character tells them apart from the cast.
    rng = np.random.default_rng(seed + _OUTSIDER_SALT[split])
    comps = compose.composites(rng, outsiders.load(outsider_cache, split), photos, n_outsiders, size,
                               per_picture=(1.0, 1))
    yield from _crops(comps, lambda c: UNKNOWN_LABEL, f"outsider {split}", margin, **cut)


def describe_demo_faces(counts, seed, hold_out_val=True, live2d_share=0.0, command=None, non_face_share=0.0,
                        kinds=("known",)):
    """What a demo face data set holds and how to rebuild it (written as OUT/dataset.json)."""
    return {
        "command": command,
        "crop_kinds": {"kinds": list(kinds), "rule": crop_kinds.__doc__.split("\n\n", 1)[1].strip()},
        "live2d": {"share_of_composites": live2d_share,
                   "source": "Live2D Inc.'s sample characters (npm, rendered by `flask demo render`)",
                   "splits": {k: f"pose_id % {POSE_FOLDS} in {list(v)}" for k, v in LIVE2D_FOLDS.items()}},
        "composites": counts, "seed": seed,
        "cast": {"source": f"Debian {' + '.join(demo_cast.PACKAGES)} (Expat)",
                 "splits": {k: dict(zip(("sprites", "backgrounds"),
                                        map(list, demo_sprite_plan(k, hold_out_val))))
                            for k in demo_cast.SPLITS},
                 "faces": "cut at the sprites' known face boxes, margin 0.3, plus photo or synthetic backgrounds"},
        "unknown": {"label": UNKNOWN_LABEL,
                    "source": f"Debian {outsiders.OUTSIDER_PACKAGE} (GPL-2+): cartoon children of the amoebax game, "
                              "not anime cast; face boxes read off by hand",
                    "characters": {k: list(v) for k, v in outsiders.OUTSIDER_SPLITS.items()},
                    "share_of_composites": 0.25,
                    "backgrounds": "the same split's backgrounds as the cast",
                    "non_face": {"share_of_cast_composites": non_face_share,
                                 "what": "a face-sized crop of the composite away from every face "
                                         "(background, hair, clothes), from the split's own composites"}},
    }


def build_demo_faces(out_dir, counts=None, seed=0, on_crop=None, hold_out_val=True, command=None, **kwargs):
    """Write OUT/{train,val,test}/<character or _unknown>/*.png from the demo cast and the outsiders."""
    counts = counts or {"train": 400, "val": 120, "test": 240}
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty: choose a new folder")
    stats = {}
    with staged_dir(out_dir, replace=False) as staging:
        for split, count in counts.items():
            crops = demo_face_crops(split, count, seed, hold_out_val=hold_out_val, **kwargs)
            if on_crop:
                crops = (on_crop(c) or c for c in crops)
            # No near-duplicate removal: composites are distinct by construction (identical
            # crops still collapse, as files are named by their pixels' hash).
            stats[split] = write_crops(crops, staging / split, dedupe_bits=-1)
        description = describe_demo_faces(counts, seed, hold_out_val, kwargs.get("live2d_share", 0.0), command,
                                          kwargs.get("non_face_share", 0.0), kwargs.get("kinds", ("known",)))
        description["faces"] = {k: v["labels"] for k, v in stats.items()}
        if any("kinds" in v for v in stats.values()):
            description["faces_per_kind"] = {k: v.get("kinds", {}) for k, v in stats.items()}
        write_json(staging / "dataset.json", description)
    return stats
