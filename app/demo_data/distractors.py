"""Distractors: Tux Paint's stamps (Debian `tuxpaint-stamps-default`, GPL-2) pasted into
training backgrounds as background.

Photos of fruit, mugs, tools, flowers, cars, and drawn houses and towers, each with exact alpha.
A cutout network that has seen few objects takes any colourful thing beside a character (a row
of seats, a tree) for part of it; objects pasted behind the figures, with mask 0, teach it that
an object is not a character. Animals, people, clothes, letters and anything with a face are left
out: those could be characters. Training only, kept in a git-ignored cache like the demo cast.
"""
import io
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import CACHE_ROOT
from app.demo_data import debian as debian_packages

DEFAULT_CACHE = CACHE_ROOT / "distractors"
PACKAGE = "tuxpaint-stamps-default"
STAMPS_DIR = "usr/share/tuxpaint/stamps/"
CATEGORIES = ("food", "hobbies", "household", "medical", "military", "naturalforces", "plants",
              "space", "sports", "town", "vehicles")
# Stamps in those categories that show a person, a figure or a face.
SKIP = {"final-roll-call", "fireman240a", "paratrooper", "spacewalk", "statue", "totem",
        "inukshuk-outline", "inukshuk-photo", "tux_tractor", "eddieCopter", "toy_train"}
MAX_SIDE = 512  # pasted at a fraction of a few-hundred-pixel composite
MIN_COUNT = 250  # the package holds about 300 such stamps; fewer means a different package


def fetch(cache_dir=DEFAULT_CACHE, log=print):
    """Download the stamps (about 160 MB) and keep the chosen ones, cropped, in cache_dir."""
    cache_dir = Path(cache_dir)
    if is_fetched(cache_dir):
        log(f"distractors already in {cache_dir}")
        return cache_dir
    debian_packages.fetch([PACKAGE], cache_dir, lambda debs, out: sum(extract(d, out) for d in debs),
                          "distractors", MIN_COUNT, log)
    return cache_dir


def chosen(name):
    """Whether a path in the package is a stamp kept as a distractor."""
    path = Path(name)
    if not name.startswith(STAMPS_DIR) or path.suffix.lower() != ".png":
        return False
    category = name[len(STAMPS_DIR):].split("/")[0]
    return category in CATEGORIES and path.stem not in SKIP


def extract(deb, out_dir):
    """Write the chosen stamps, cropped to their alpha and no larger than MAX_SIDE, to out_dir; count."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, src in debian_packages.files(deb):
        if not chosen(name):
            continue
        img = Image.open(io.BytesIO(src.read())).convert("RGBA")
        box = img.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
        if box is None:
            continue
        img = img.crop(box)
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        # Folders give unique names (food/fruit/apple.png vs food/fruit/cartoon/apple.png).
        stem = name[len(STAMPS_DIR):-len(".png")].replace("/", "-")
        img.save(out_dir / f"{stem}.png")
        count += 1
    return count


def is_fetched(cache_dir=DEFAULT_CACHE):
    return Path(cache_dir).is_dir() and len(list(Path(cache_dir).glob("*.png"))) >= MIN_COUNT


def load(cache_dir=DEFAULT_CACHE, min_count=MIN_COUNT):
    """The distractors as RGBA arrays."""
    paths = debian_packages.cached(cache_dir, ".png", "distractors", min_count)
    return [np.asarray(Image.open(p).convert("RGBA")) for p in paths]
