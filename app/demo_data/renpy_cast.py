"""The demo cast: Ren'Py character sprites (Debian, Expat licence) composed onto backgrounds.

Sprites are RGBA, so the alpha channel is an exact foreground mask, and each sprite's
face box is known, which gives labelled faces for the classifier and image/mask pairs
for U2-Net. The art lives in a git-ignored cache; nothing of it is committed.
"""
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import CACHE_ROOT
from app.demo_data import compose
from app.demo_data import debian as debian_packages
from app.demo_data.figures import Figure

DEFAULT_CACHE = CACHE_ROOT / "demo_cast"
PACKAGES = ("renpy-demo", "renpy-thequestion")
IMAGE_DIRS = ("usr/share/games/renpy/demo/game/images",
              "usr/share/games/renpy/the_question/game/images")
CHARACTERS = ("eileen", "lucy", "sylvie")
# Whole-character RGBA art from the same packages, with shapes no sprite has (a close-up bust,
# a chibi with a hat and props). Cutout training only: no face boxes, never in val or test.
EXTRA_ART = {
    "sylvie bust": "usr/share/games/renpy/the_question/android-icon_foreground.png",
    "eileen chibi": "usr/share/games/renpy/demo/game/images/logo base.png",
}
BACKGROUND_PHOTOS = ("cave", "washington", "whitehouse", "club", "lecturehall",
                     "meadow", "uni", "panorama")

# Face boxes (x, y, w, h) in sprite pixels, from the cascade on the sprite over white
# (app.inference.faces.detect_faces). "lucy mad" is the cascade's one miss: its box is read off by hand.
FACE_BOXES = {
    "eileen concerned": (55, 80, 215, 215),
    "eileen happy": (54, 76, 217, 217),
    "eileen vhappy": (53, 81, 213, 213),
    "lucy happy": (133, 112, 165, 165),
    "lucy mad": (150, 160, 160, 160),  # by hand
    "sylvie blue giggle": (81, 38, 157, 157),
    "sylvie blue normal": (83, 40, 154, 154),
    "sylvie blue smile": (78, 35, 163, 163),
    "sylvie blue surprised": (76, 33, 167, 167),
    "sylvie green giggle": (116, 50, 142, 142),
    "sylvie green normal": (116, 47, 147, 147),
    "sylvie green smile": (115, 45, 147, 147),
    "sylvie green surprised": (113, 47, 150, 150),
}

# Held out: an expression of Eileen, Lucy's other pose, Sylvie's whole green outfit, and
# two background photos. Validation uses training sprites on a background of its own.
SPLITS = {
    "train": {"sprites": ("eileen happy", "eileen vhappy", "lucy happy", "sylvie blue giggle",
                          "sylvie blue normal", "sylvie blue smile", "sylvie blue surprised"),
              "backgrounds": ("cave", "washington", "club", "meadow", "panorama")},
    "val": {"sprites": ("eileen happy", "eileen vhappy", "lucy happy", "sylvie blue giggle",
                        "sylvie blue normal", "sylvie blue smile", "sylvie blue surprised"),
            "backgrounds": ("whitehouse",)},
    "test": {"sprites": ("eileen concerned", "lucy mad", "sylvie green giggle",
                         "sylvie green normal", "sylvie green smile", "sylvie green surprised"),
             "backgrounds": ("lecturehall", "uni")},
}
# Split-specific seeds keep synthetic backgrounds (flat, gradient, noise) distinct across splits.
_SPLIT_SALT = {"train": 0, "val": 1_000_003, "test": 2_000_003}


def fetch(cache_dir=DEFAULT_CACHE, log=print):
    """Download the Ren'Py packages from Debian and keep their sprites and backgrounds in cache_dir."""
    cache_dir = Path(cache_dir)
    if is_fetched(cache_dir):
        log(f"demo cast already in {cache_dir}")
        return cache_dir
    with debian_packages.downloaded(PACKAGES, cache_dir, log) as (tmp, debs):
        debian_packages.unpack(debs, tmp / "x")
        staged = tmp / "demo_cast"
        (staged / "sprites").mkdir(parents=True)
        (staged / "backgrounds").mkdir()
        (staged / "extra").mkdir()
        for image_dir in IMAGE_DIRS:
            for src in (tmp / "x" / image_dir).iterdir():
                stem = src.stem
                if stem in FACE_BOXES:
                    shutil.copyfile(src, staged / "sprites" / src.name)
                elif stem.startswith("bg ") and stem[3:] in BACKGROUND_PHOTOS:
                    shutil.copyfile(src, staged / "backgrounds" / f"{stem[3:]}{src.suffix}")
        for key, path in EXTRA_ART.items():
            shutil.copyfile(tmp / "x" / path, staged / "extra" / f"{key}.png")
        debian_packages.install(staged, cache_dir)
    log(f"demo cast: {len(FACE_BOXES)} sprites, {len(EXTRA_ART)} extra pictures, "
        f"{len(BACKGROUND_PHOTOS)} backgrounds in {cache_dir}")
    return cache_dir


def is_fetched(cache_dir=DEFAULT_CACHE):
    """True when every sprite and background is in the cache."""
    cache_dir = Path(cache_dir)
    sprites = {p.stem for p in (cache_dir / "sprites").glob("*.png")}
    backgrounds = {p.stem for p in (cache_dir / "backgrounds").glob("*")}
    extra = {p.stem for p in (cache_dir / "extra").glob("*.png")}
    return (sprites >= set(FACE_BOXES) and backgrounds >= set(BACKGROUND_PHOTOS)
            and extra >= set(EXTRA_ART))


def _require(cache_dir):
    if not is_fetched(cache_dir):
        raise FileNotFoundError(
            f"demo cast not found in {cache_dir}: run `flask --app wsgi demo fetch` first")


def load_sprites(cache_dir=DEFAULT_CACHE, keys=None):
    """Figures by key (all when keys is None), with their face boxes."""
    cache_dir = Path(cache_dir)
    _require(cache_dir)
    sprites = []
    for key in keys or FACE_BOXES:
        character, *rest = key.split(" ")
        outfit = rest[0] if len(rest) == 2 else "default"
        rgba = np.asarray(Image.open(cache_dir / "sprites" / f"{key}.png").convert("RGBA"))
        sprites.append(Figure(key, character, outfit, rest[-1], rgba, FACE_BOXES[key]))
    return sprites


def load_extra_art(cache_dir=DEFAULT_CACHE):
    """EXTRA_ART as Figures without face boxes (for cutout training)."""
    cache_dir = Path(cache_dir)
    _require(cache_dir)
    out = []
    for key in EXTRA_ART:
        character, kind = key.split(" ")
        rgba = np.asarray(Image.open(cache_dir / "extra" / f"{key}.png").convert("RGBA"))
        out.append(Figure(key, character, kind, kind, rgba, None))
    return out


def load_backgrounds(cache_dir=DEFAULT_CACHE, names=None):
    """Background photos as RGB arrays, by name."""
    cache_dir = Path(cache_dir)
    _require(cache_dir)
    out = {}
    for name in names or BACKGROUND_PHOTOS:
        path = next((cache_dir / "backgrounds").glob(f"{name}.*"))
        out[name] = np.asarray(Image.open(path).convert("RGB"))
    return out


def composites(split, count, seed=0, size=(512, 384), cache_dir=DEFAULT_CACHE, photo_share=0.6):
    """Yield `count` composites of `split` ("train" | "val" | "test"), reproducible from `seed`."""
    spec = SPLITS[split]
    rng = np.random.default_rng(seed + _SPLIT_SALT[split])
    yield from compose.composites(rng, load_sprites(cache_dir, spec["sprites"]),
                                  load_backgrounds(cache_dir, spec["backgrounds"]), count, size,
                                  photo_share)


def load(cache_dir=DEFAULT_CACHE, split="train"):
    """The source interface: the split's sprites as Figures."""
    return load_sprites(cache_dir, SPLITS[split]["sprites"])
