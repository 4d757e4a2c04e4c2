"""Wesnoth's unit portraits (Debian `wesnoth-1.16-data`, GPL-2+): drawn figures with exact alpha.

Three characters teach the cutout network their own outlines; some 140 painted people in
hoods, capes, armour and robes, holding weapons, teach it what a drawn figure in front of a
background looks like. They are training shapes only (never in validation or test pictures)
and, like the demo cast, live in a git-ignored cache: nothing of them is committed.
"""
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import CACHE_ROOT
from app.demo_data import compose, renpy_cast
from app.demo_data import debian as debian_packages
from app.demo_data.figures import Figure

DEFAULT_CACHE = CACHE_ROOT / "portraits"
PACKAGE = "wesnoth-1.16-data"
PORTRAIT_DIR = "usr/share/games/wesnoth/1.16/data/core/images/portraits/"
# People-shaped kinds only: cut-out characters stand, wear clothes and hold things; wolves,
# drakes, monsters and translucent ghosts would teach other shapes (and score other things).
FIGURE_GROUPS = ("humans", "elves", "dwarves", "orcs", "goblins", "trolls", "merfolk", "nagas",
                 "dunefolk")
MIN_COUNT = 120  # the package holds 143 of these; fewer means a different or broken package
# Every sixth portrait (by name) is held out: the "dev" split chooses between training recipes
# on figures never trained on, so the demo cast's test split is left for the final figures.
DEV_EVERY = 6
DEV_BACKGROUNDS = ("whitehouse",)  # the demo cast's validation photo: in neither training nor test


def fetch(cache_dir=DEFAULT_CACHE, log=print):
    """Download the package from Debian; keep its people-shaped core portraits (about 26 MB) in cache_dir."""
    cache_dir = Path(cache_dir)
    if is_fetched(cache_dir):
        log(f"portraits already in {cache_dir}")
        return cache_dir
    log(f"{PACKAGE} is about 150 MB")
    debian_packages.fetch([PACKAGE], cache_dir, lambda debs, out: extract(debs[0], out),
                          "portraits", MIN_COUNT, log)
    return cache_dir


def extract(deb, out_dir):
    """Copy the portraits out of a .deb into out_dir (humans/knight.png -> humans-knight.png); count."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, src in debian_packages.files(deb):  # nothing but the portraits touches the disk
        if not (name.startswith(PORTRAIT_DIR) and name.endswith(".png")):
            continue
        if name[len(PORTRAIT_DIR):].split("/")[0] not in FIGURE_GROUPS:
            continue
        with open(out_dir / name[len(PORTRAIT_DIR):].replace("/", "-"), "wb") as dst:
            shutil.copyfileobj(src, dst)
        count += 1
    return count


def is_fetched(cache_dir=DEFAULT_CACHE):
    return Path(cache_dir).is_dir() and len(list(Path(cache_dir).glob("*.png"))) >= MIN_COUNT


def load(cache_dir=DEFAULT_CACHE, split="train", min_count=MIN_COUNT):
    """The portraits of `split` ("train" | "dev") as Figures without face boxes (alpha = exact mask)."""
    paths = debian_packages.cached(cache_dir, ".png", "portraits", min_count)
    if split not in ("train", "dev"):
        raise ValueError(f"unknown portrait split {split!r}")
    figures = []
    for i, path in enumerate(paths):
        if (i % DEV_EVERY == 0) != (split == "dev"):
            continue
        rgba = np.asarray(Image.open(path).convert("RGBA"))
        if (rgba[..., 3] > 127).mean() < 0.02:
            continue  # an empty or near-empty picture teaches nothing
        figures.append(Figure(path.stem, "portrait", "portrait", path.stem, rgba, None))
    return figures


def dev_composites(count, seed=0, size=(448, 336), cache_dir=DEFAULT_CACHE,
                   cast_cache=renpy_cast.DEFAULT_CACHE, min_count=MIN_COUNT):
    """`count` pictures of held-out portraits (1-2 each) over DEV_BACKGROUNDS or synthetic ones,
    reproducible from `seed`, for choosing a recipe without the demo cast's test split."""
    rng = np.random.default_rng(seed + 3_000_017)
    yield from compose.composites(rng, load(cache_dir, "dev", min_count),
                                  renpy_cast.load_backgrounds(cast_cache, DEV_BACKGROUNDS), count, size)
