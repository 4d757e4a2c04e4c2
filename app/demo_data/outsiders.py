"""Characters outside the cast, for "unknown" faces: the cartoon children of Debian's amoebax."""
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import CACHE_ROOT
from app.demo_data import debian as debian_packages
from app.demo_data.figures import Figure

# The cartoon children of Debian's `amoebax-data` (GPL-2+ art,
# /usr/share/games/amoebax/graphics/<Name>.png, RGBA). The cascade finds none of their faces,
# so every box (x, y, w, h, sprite pixels) was read off by hand from a 10 px grid.
OUTSIDER_PACKAGE = "amoebax-data"
OUTSIDER_DIR = "usr/share/games/amoebax/graphics"
OUTSIDER_FACE_BOXES = {
    "Brooke": (60, 55, 100, 100),
    "Ed": (50, 70, 85, 85),
    "Gary": (75, 55, 85, 85),
    "Kim": (70, 65, 100, 100),
    "Lem": (60, 70, 105, 105),
    "Nicholas": (60, 52, 88, 88),
    "Sasha": (88, 85, 100, 100),
    "Tom": (70, 38, 95, 95),
}
# Whole characters are held out: training shows the head some outsiders (outlier exposure),
# validation calibrates the unknown threshold on others, and the test set's are never seen.
OUTSIDER_SPLITS = {"train": ("Brooke", "Ed", "Gary"), "val": ("Kim", "Lem"),
                   "test": ("Nicholas", "Sasha", "Tom")}
DEFAULT_CACHE = CACHE_ROOT / "outsiders"


def fetch(cache_dir=DEFAULT_CACHE, log=print):
    """Download amoebax-data from Debian and keep the outsider sprites in cache_dir."""
    cache_dir = Path(cache_dir)
    if is_fetched(cache_dir):
        return cache_dir
    wanted = {f"{OUTSIDER_DIR}/{name}.png" for name in OUTSIDER_FACE_BOXES}

    def stage(debs, out_dir):
        count = 0
        for name, src in debian_packages.files(debs[0]):
            if name in wanted:
                with open(out_dir / Path(name).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                count += 1
        return count
    debian_packages.fetch([OUTSIDER_PACKAGE], cache_dir, stage, "outsider sprites", len(wanted), log)
    return cache_dir


def is_fetched(cache_dir=DEFAULT_CACHE):
    """True when every outsider sprite is in the cache."""
    return all((Path(cache_dir) / f"{n}.png").is_file() for n in OUTSIDER_FACE_BOXES)


def load(cache_dir=DEFAULT_CACHE, split=None):
    """Outsiders of `split` (all when None) as Figures (character = their name, lower case)."""
    out = []
    for name in OUTSIDER_SPLITS[split] if split else OUTSIDER_FACE_BOXES:
        rgba = np.asarray(Image.open(Path(cache_dir) / f"{name}.png").convert("RGBA"))
        out.append(Figure(name.lower(), name.lower(), "default", "default", rgba, OUTSIDER_FACE_BOXES[name]))
    return out


