"""Load rendered Live2D figures from the cache, by split (the rule is in the package docstring)."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

from app.demo_data.figures import Figure
from app.demo_data.live2d import cast
from app.demo_data.live2d.renderer import DEFAULT_CACHE, figure_name

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
        raise FileNotFoundError(f"no Live2D renders in {cache_dir}: run `flask demo render` "
                                f"(after `{cast.SETUP_COMMAND}`)")
    return figures
