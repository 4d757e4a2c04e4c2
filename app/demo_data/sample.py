"""The page's sample picture: two demo-cast characters on a demo background, made at setup from
the cached art (`flask demo sample`) and, like the art, never committed. The page offers it on a
first visit (templates/index.html) when static/vendor/sample-cast.webp exists."""
from pathlib import Path

import numpy as np
from PIL import Image

from app.demo_data import compose, renpy_cast

SAMPLE_NAME = "sample-cast.webp"
FIGURES = ("eileen happy", "sylvie blue smile")
SIZE = (960, 640)


def sample_picture(cache_dir=renpy_cast.DEFAULT_CACHE):
    """An RGB array: the first of a fixed series of composites in which the page's face detector
    finds both faces (so a first try shows boxes and names)."""
    from app.inference.faces import detect_faces
    sprites = {s.key: s for s in renpy_cast.load_sprites(cache_dir, FIGURES)}
    backgrounds = renpy_cast.load_backgrounds(cache_dir)
    names = sorted(backgrounds)
    for seed in range(60):
        rng = np.random.default_rng(seed)
        background = compose.photo_crop(rng, backgrounds[names[seed % len(names)]], SIZE)
        comp = compose.compose(rng, [sprites[key] for key in FIGURES], background, SIZE)
        if len(comp.faces) == 2 and len(detect_faces(comp.image)) == 2:
            return comp.image
    raise RuntimeError("no demo composite in which both faces are detected")


def write_sample(out, cache_dir=renpy_cast.DEFAULT_CACHE):
    """Write the sample picture as a WebP to `out` (whole, or not at all); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    Image.fromarray(sample_picture(cache_dir)).save(partial, "WEBP", quality=88, method=6)
    partial.replace(out)
    return out
