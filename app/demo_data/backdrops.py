"""Backdrops: desktop wallpapers and painted landscapes from Debian, extra training backgrounds.

The demo cast brings five training photos. A cutout network that has seen only those takes
any unfamiliar object (a bench, a row of red seats) for part of the character. Some seventy
more pictures (flowers, leaves, sky, abstract art, painted hills, castles and swamps) teach it
that scenery, whatever it shows, is background. Training only: validation and test pictures
keep the demo cast's own backgrounds. Like the demo cast they live in a git-ignored cache;
their licences (CC-BY-SA-3.0, GPL-2+ and others) are in each package's copyright file.
"""
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import CACHE_ROOT
from app.demo_data import debian as debian_packages

DEFAULT_CACHE = CACHE_ROOT / "backdrops"
# package -> folder whose pictures are kept
SOURCES = {
    "gnome-backgrounds": "usr/share/backgrounds/gnome/",
    "mate-backgrounds": "usr/share/backgrounds/mate/",
    "ukui-wallpapers": "usr/share/backgrounds/",
    "wesnoth-1.16-data": "usr/share/games/wesnoth/1.16/data/core/images/story/",
}
# Wesnoth's battlefield shows an army: drawn people in a background would teach the opposite
# of the portraits. Its "_nohumans" twin is kept.
SKIP = {"landscape-battlefield"}
MAX_SIDE = 1024  # training crops are at most a few hundred pixels: keep the cache small
MIN_SIDE = 480   # icons and placeholders are not scenery
MIN_COUNT = 50   # the packages hold about 70; fewer means different or broken packages


def fetch(cache_dir=DEFAULT_CACHE, log=print):
    """Download the packages from Debian (about 250 MB) and keep their pictures, resized, in cache_dir."""
    cache_dir = Path(cache_dir)
    if is_fetched(cache_dir):
        log(f"backdrops already in {cache_dir}")
        return cache_dir
    log("wallpapers and Wesnoth's data are about 250 MB")
    debian_packages.fetch(sorted(SOURCES), cache_dir,
                          lambda debs, out: sum(extract(deb, out) for deb in debs),
                          "backdrops", MIN_COUNT, log)
    return cache_dir


def extract(deb, out_dir):
    """Write the opaque pictures under the package's SOURCES folder to out_dir as JPEGs; count."""
    out_dir, package = Path(out_dir), Path(deb).name.split("_")[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = SOURCES[package]
    count = 0
    for name, src in debian_packages.files(deb):
        path = Path(name)
        if not (name.startswith(folder) and path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")):
            continue
        # One of each picture: MATE ships some in several sizes (Elephants_3840x2160.jpg).
        if path.stem in SKIP or re.search(r"_\d+x\d+$", path.stem):
            continue
        picture = _scenery(src.read())
        if picture is not None:
            picture.save(out_dir / f"{package}-{path.stem}.jpg", quality=92)
            count += 1
    return count


def _scenery(data):
    """The picture as RGB no larger than MAX_SIDE, or None for small or see-through ones."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except OSError:
        return None
    if min(img.size) < MIN_SIDE:
        return None
    if "A" in img.getbands() or "transparency" in img.info:
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
        if (alpha < 250).mean() > 0.001:
            return None  # drawn to lie over a desktop colour: not a whole scene
    img = img.convert("RGB")
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    return img


def is_fetched(cache_dir=DEFAULT_CACHE):
    return Path(cache_dir).is_dir() and len(list(Path(cache_dir).glob("*.jpg"))) >= MIN_COUNT


def load(cache_dir=DEFAULT_CACHE, min_count=MIN_COUNT):
    """Every backdrop as an RGB array."""
    paths = debian_packages.cached(cache_dir, ".jpg", "backdrops", min_count)
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]
