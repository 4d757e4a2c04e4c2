"""The demo cast: Ren'Py character sprites (Debian, Expat licence) composed onto backgrounds.

Sprites are RGBA, so the alpha channel is an exact foreground mask, and each sprite's
face box is known, which gives labelled faces for the classifier and image/mask pairs
for U2-Net. The art lives in a git-ignored cache; nothing of it is committed.
"""
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from app.training import debian_packages

DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "demo_cast"
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
# (app.faces.detect_faces). "lucy mad" is the cascade's one miss: its box is read off by hand.
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


@dataclass
class Sprite:
    key: str  # "sylvie green smile"
    character: str
    outfit: str
    expression: str
    rgba: np.ndarray  # H x W x 4 uint8
    face_box: tuple  # None for EXTRA_ART


@dataclass
class Composite:
    image: np.ndarray  # H x W x 3 uint8
    mask: np.ndarray  # H x W uint8, 255 = character
    faces: list  # [(character, (x, y, w, h))]
    sprites: tuple = ()  # keys of the sprites in it
    background: str = ""  # the photo's name or "synthetic" (set by `composites`)


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
    """Sprites by key (all when keys is None), with their face boxes."""
    cache_dir = Path(cache_dir)
    _require(cache_dir)
    sprites = []
    for key in keys or FACE_BOXES:
        character, *rest = key.split(" ")
        outfit = rest[0] if len(rest) == 2 else "default"
        rgba = np.asarray(Image.open(cache_dir / "sprites" / f"{key}.png").convert("RGBA"))
        sprites.append(Sprite(key, character, outfit, rest[-1], rgba, FACE_BOXES[key]))
    return sprites


def load_extra_art(cache_dir=DEFAULT_CACHE):
    """EXTRA_ART as Sprites without face boxes (for cutout training)."""
    cache_dir = Path(cache_dir)
    _require(cache_dir)
    out = []
    for key in EXTRA_ART:
        character, kind = key.split(" ")
        rgba = np.asarray(Image.open(cache_dir / "extra" / f"{key}.png").convert("RGBA"))
        out.append(Sprite(key, character, kind, kind, rgba, None))
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


def synthetic_background(rng, size):
    """A flat colour, a two-colour gradient or smoothed noise, size = (w, h)."""
    w, h = size
    kind = rng.integers(3)
    if kind == 0:
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (h, w, 3)).copy()
    if kind == 1:
        a, b = rng.integers(0, 256, (2, 3)).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        return (a + (b - a) * t[..., None]).astype(np.uint8)
    cells = int(rng.integers(4, 32))
    small = rng.integers(0, 256, (cells, max(1, cells * w // h), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def photo_crop(rng, photo, size):
    w, h = size
    ph, pw = photo.shape[:2]
    scale = rng.uniform(1.0, 1.6) * max(w / pw, h / ph)
    cw, ch = min(pw, round(w / scale)), min(ph, round(h / scale))
    x, y = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
    crop = Image.fromarray(photo[y:y + ch, x:x + cw])
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(crop.resize((w, h), Image.BILINEAR))


def compose(rng, sprites, background, size):
    """Place 1-2 sprites (scaled, maybe flipped, side by side) on a background of `size` (w, h)."""
    w, h = size
    canvas = Image.fromarray(background).convert("RGBA")
    mask = np.zeros((h, w), np.uint8)
    faces = []
    n = len(sprites)
    for i, sprite in enumerate(sprites):
        sh, sw = sprite.rgba.shape[:2]
        # Visual-novel framing: the sprite's height is 0.7-1.4 of the picture's, cut at the bottom.
        scale = rng.uniform(0.7, 1.4) * h / sh
        scale = min(scale, (w / n) / sw * 1.1)
        nw, nh = max(1, round(sw * scale)), max(1, round(sh * scale))
        img = Image.fromarray(sprite.rgba).resize((nw, nh), Image.LANCZOS)
        fx, fy, fw, fh = sprite.face_box or (0, 0, 0, 0)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
            fx = sw - fx - fw
        slot_w = w / n
        x = round(i * slot_w + rng.uniform(0, max(0.0, slot_w - nw))) if nw < slot_w else \
            round(i * slot_w + (slot_w - nw) / 2)
        y = round(rng.uniform(0.0, 0.35) * h)
        canvas.alpha_composite(img, (x, y)) if x >= 0 else canvas.paste(img, (x, y), img)
        alpha = np.zeros((h, w), np.uint8)
        src = np.asarray(img)[..., 3]
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + nw), min(h, y + nh)
        alpha[y0:y1, x0:x1] = src[y0 - y:y1 - y, x0 - x:x1 - x]
        mask = np.maximum(mask, alpha)
        box = (x + fx * scale, y + fy * scale, fw * scale, fh * scale)
        bx, by, bw, bh = (int(round(v)) for v in box)
        if sprite.face_box and bx >= 0 and by >= 0 and bx + bw <= w and by + bh <= h:
            faces.append((sprite.character, (bx, by, bw, bh)))
    return Composite(np.asarray(canvas.convert("RGB")), mask, faces, tuple(s.key for s in sprites))


def composites(split, count, seed=0, size=(512, 384), cache_dir=DEFAULT_CACHE, photo_share=0.6):
    """Yield `count` composites of `split` ("train" | "val" | "test"), reproducible from `seed`."""
    spec = SPLITS[split]
    sprites = load_sprites(cache_dir, spec["sprites"])
    photos = load_backgrounds(cache_dir, spec["backgrounds"])
    rng = np.random.default_rng(seed + _SPLIT_SALT[split])
    names = sorted(photos)
    for _ in range(count):
        if rng.random() < photo_share:
            name = names[rng.integers(len(names))]
            background = photo_crop(rng, photos[name], size)
        else:
            name, background = "synthetic", synthetic_background(rng, size)
        n = 1 if rng.random() < 0.7 else 2
        chosen = [sprites[j] for j in rng.choice(len(sprites), n, replace=False)]
        comp = compose(rng, chosen, background, size)
        comp.background = name
        yield comp
