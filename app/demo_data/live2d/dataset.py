"""Load rendered Live2D figures from the cache, by split (the rule is in the package docstring),
and compose the cutout networks' held-out pictures of them."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

from app.demo_data import compose, renpy_cast
from app.demo_data.figures import Figure
from app.demo_data.live2d import cast
from app.demo_data.live2d.renderer import DEFAULT_CACHE, figure_name

RENDER_COMMAND = "flask --app wsgi demo render"

HELD_OUT_CHARACTERS = ("haruto",)
POSE_FOLDS = 10  # pose_id % 10: 0-7 train, 8 val, 9 test_pose
SPLITS = ("train", "val", "test_pose", "test_character", "all")


def split_of(character, pose_id):
    """The split a render belongs to (never "all")."""
    if character in HELD_OUT_CHARACTERS:
        return "test_character"
    fold = pose_id % POSE_FOLDS
    return "train" if fold < 8 else "val" if fold == 8 else "test_pose"


def _crop_to_alpha(rgba, face_box, meta):
    x0, y0, x1, y1 = meta["alpha_box"]
    x, y, w, h = face_box
    return np.ascontiguousarray(rgba[y0:y1, x0:x1]), (x - x0, y - y0, w, h)


def load(cache_dir=DEFAULT_CACHE, split="train", crop=True):
    """Every rendered figure of `split` in cache_dir, in a fixed order.

    crop: cut each render to its alpha's bounding box (a third of the memory; the face box moves
    with it). Raises FileNotFoundError, naming the render command, when nothing is rendered.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    figures = []
    for key in cast.figures():
        folder = Path(cache_dir) / figure_name(*key)
        for meta_path in sorted(folder.glob("[0-9]*.json")):
            png = meta_path.with_suffix(".png")
            if not png.is_file():
                continue  # a render interrupted between its two files
            meta = json.loads(meta_path.read_text())
            if split != "all" and split_of(meta["character"], meta["pose_id"]) != split:
                continue
            rgba = np.array(Image.open(png).convert("RGBA"))
            face_box = tuple(meta["face_box"])
            if crop:
                rgba, face_box = _crop_to_alpha(rgba, face_box, meta)
            figures.append(Figure(f"{figure_name(meta['character'], meta['outfit'])} #{meta['pose_id']:04d}",
                                  meta["character"], meta["outfit"], meta["expression"], rgba, face_box,
                                  meta))
    if not figures and not any(Path(cache_dir).glob("*/[0-9]*.json")):
        raise FileNotFoundError(f"no Live2D renders in {cache_dir}: run `{RENDER_COMMAND}` "
                                f"(after `{cast.SETUP_COMMAND}`)")
    return figures


def figure_of(key):
    """The figure (character-outfit) a render's key names: "haru-01 #0042" -> "haru-01"."""
    return key.rsplit(" #", 1)[0]


def require(cache_dir=DEFAULT_CACHE, split="train"):
    """load(), but a split with no render at all (a cache rendered in part, or not at all) is a
    FileNotFoundError naming the render command, never an empty list that would silently leave
    the figures out."""
    figures = load(cache_dir, split)
    if not figures:
        raise FileNotFoundError(f"no Live2D renders of the {split} split in {cache_dir}: run "
                                f"`{RENDER_COMMAND}` (after `{cast.SETUP_COMMAND}`)")
    return figures


# The cutout networks' held-out pictures: a split's figures over the demo cast's test photos
# (lecturehall, uni: no cutout training picture shows them) or synthetic backgrounds, from a
# seed of their own, so neither set shares a background draw with the demo cast's test split.
CUTOUT_HELDOUT_SALT = {"test_character": 4_000_037, "test_pose": 5_000_011}
# Validation (choosing a checkpoint): the val poses (ending in 8) over the demo cast's val photos.
CUTOUT_VAL_SALT = 6_000_011


def composites(split, count, seed=0, size=(448, 336), cache_dir=DEFAULT_CACHE,
               cast_cache=renpy_cast.DEFAULT_CACHE):
    """Yield `count` held-out composites (1-2 figures each) of `split` ("test_character": Haruto,
    every pose; "test_pose": the other figures' poses ending in 9; "val": poses ending in 8 over
    the val photos, for choosing checkpoints), reproducible from `seed`."""
    salts = dict(CUTOUT_HELDOUT_SALT, val=CUTOUT_VAL_SALT)
    if split not in salts:
        raise ValueError(f"Live2D cutout composites are of {', '.join(salts)}, not {split!r}")
    figures = require(cache_dir, split)
    photo_split = "val" if split == "val" else "test"
    photos = renpy_cast.load_backgrounds(cast_cache, renpy_cast.SPLITS[photo_split]["backgrounds"])
    rng = np.random.default_rng(seed + salts[split])
    yield from compose.composites(rng, figures, photos, count, size)
