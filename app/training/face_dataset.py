"""Face data sets from an operator's material: image folders, videos and exported reports.

Layout in: `SRC/<label>/*` (images or videos) for labelled material, any tree for unlabelled
material, and `flask reports export` output (`DIR/<label>/<id>.png`, already face crops).
Layout out: `OUT/<label>/<hash>.png`, or `OUT/_unsorted/<hash>.png` to sort by hand.
"""
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from app import faces
from app.training import debian_packages


@contextlib.contextmanager
def staged_dir(out_dir):
    """Yield a temporary folder beside `out_dir` that replaces it (if empty or absent) on success.

    A failed run removes the folder, so nothing half-written is ever left at `out_dir`.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield staging
        if out_dir.exists():
            out_dir.rmdir()  # refuses a non-empty folder: never overwrite someone's data
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg"}
UNSORTED = "_unsorted"
# Margin around the detected box on each side, as a share of its width (the seed used 0.3).
DEFAULT_MARGIN = 0.3
# dHash distance (of 64 bits) at or below which two crops of one label count as the same picture.
DEFAULT_DUPLICATE_BITS = 4
# Video frames are scaled so their longer side is at most this before detection.
VIDEO_MAX_SIDE = 1280


@dataclass
class FaceCrop:
    image: Image.Image  # RGB
    label: str | None
    source: str  # where it came from, for the build log


def crop_face(rgb, box, margin=DEFAULT_MARGIN):
    """The square crop around box (x, y, w, h) grown by margin on each side, clipped to the picture."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    height, width = rgb.shape[:2]
    x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    x1, y1 = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    return Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1, :3]))


def dhash(image, size=8):
    """64-bit difference hash: is each pixel of a (size+1) x size grey thumbnail brighter than its right neighbour."""
    grey = np.asarray(image.convert("L").resize((size + 1, size), Image.BILINEAR), np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0]) if size == 8 else int("".join("01"[b] for b in bits), 2)


def hamming(a, b):
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


class NearDuplicateFilter:
    """Remembers the hashes seen per label; `is_new` is False for a crop close to one already kept."""

    def __init__(self, max_bits=DEFAULT_DUPLICATE_BITS):
        self.max_bits = max_bits
        self.seen = {}

    def is_new(self, image, label=None):
        """True (and remembered) unless a crop of the same label is within max_bits."""
        h = dhash(image)
        kept = self.seen.setdefault(label, [])
        if any(hamming(h, k) <= self.max_bits for k in kept):
            return False
        kept.append(h)
        return True


def load_rgb(path):
    """An image file as an RGB uint8 array with its EXIF orientation applied; None if unreadable."""
    try:
        with Image.open(path) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def video_frames(path, every_s=2.0, max_side=VIDEO_MAX_SIDE):
    """Yield RGB arrays of one frame every `every_s` seconds of a video, scaled to at most max_side (ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("reading videos needs ffmpeg (apt-get install ffmpeg)")
    scale = f"scale='min({max_side},iw)':'min({max_side},ih)':force_original_aspect_ratio=decrease"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path),
               "-vf", f"fps=1/{every_s},{scale}", str(Path(tmp) / "frame_%06d.png")]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise ValueError(f"ffmpeg could not read {path}: {result.stderr.strip()[-300:]}")
        for frame in sorted(Path(tmp).glob("frame_*.png")):
            yield np.asarray(Image.open(frame).convert("RGB"))


def faces_in_picture(rgb, margin=DEFAULT_MARGIN):
    """Crops of every face the cascade finds in an RGB array."""
    return [crop_face(rgb, box, margin) for box in faces.detect_faces(rgb)]


def _files(root):
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and not p.name.startswith("."))


def material(root, labelled=True):
    """(label or None, path) for every image and video under root; labels are the first folder level."""
    root = Path(root)
    for path in _files(root):
        if path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            continue
        rel = path.relative_to(root)
        if labelled and len(rel.parts) < 2:
            continue  # a loose file in a labelled tree has no label
        yield (rel.parts[0] if labelled else None), path


def crops_from_material(root, labelled=True, every_s=2.0, margin=DEFAULT_MARGIN, as_crops=False):
    """Yield FaceCrops from images and videos under root; `as_crops` takes each image whole (reports)."""
    for label, path in material(root, labelled):
        if path.suffix.lower() in VIDEO_SUFFIXES:
            for i, frame in enumerate(video_frames(path, every_s)):
                for crop in faces_in_picture(frame, margin):
                    yield FaceCrop(crop, label, f"{path}@{i * every_s:g}s")
            continue
        rgb = load_rgb(path)
        if rgb is None:
            continue
        if as_crops:
            yield FaceCrop(Image.fromarray(rgb), label, str(path))
        else:
            for crop in faces_in_picture(rgb, margin):
                yield FaceCrop(crop, label, str(path))


def _write_png(image, path):
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def write_crops(crops, out_dir, dedupe_bits=DEFAULT_DUPLICATE_BITS, min_side=24):
    """Write crops to out_dir/<label or _unsorted>/<sha>.png, dropping tiny ones and near-duplicates."""
    out_dir = Path(out_dir)
    keep = NearDuplicateFilter(dedupe_bits)
    stats = {"written": 0, "duplicates": 0, "too_small": 0, "labels": {}}
    for crop in crops:
        if min(crop.image.size) < min_side:
            stats["too_small"] += 1
            continue
        if dedupe_bits >= 0 and not keep.is_new(crop.image, crop.label):
            stats["duplicates"] += 1
            continue
        label = crop.label or UNSORTED
        target = out_dir / label
        target.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(crop.image.tobytes()).hexdigest()[:20] + ".png"
        _write_png(crop.image, target / name)
        stats["written"] += 1
        stats["labels"][label] = stats["labels"].get(label, 0) + 1
    return stats


def build_dataset(out_dir, sources=(), reports=(), labelled=True, every_s=2.0,
                  margin=DEFAULT_MARGIN, dedupe_bits=DEFAULT_DUPLICATE_BITS, on_crop=None):
    """Build a face data set in out_dir (which must not exist yet) from material folders and report exports."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty: choose a new folder")
    for src in [*sources, *reports]:
        if not Path(src).is_dir():
            raise FileNotFoundError(f"{src} is not a folder")

    def all_crops():
        for src in sources:
            yield from crops_from_material(src, labelled, every_s, margin)
        for src in reports:
            yield from crops_from_material(src, True, every_s, margin, as_crops=True)

    def counted(crops):
        for crop in crops:
            if on_crop:
                on_crop(crop)
            yield crop

    with staged_dir(out_dir) as staging:
        return write_crops(counted(all_crops()), staging, dedupe_bits)


# --- The demo data set: demo-cast faces, and faces of characters outside the cast -------------

# Characters outside the cast: the cartoon children of Debian's `amoebax-data` (GPL-2+ art,
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
UNKNOWN_LABEL = "_unknown"
_OUTSIDER_SALT = {"train": 77_001, "val": 77_002, "test": 77_003}
_CAST_SALT = {"train": 55_001, "val": 55_002}
DEFAULT_OUTSIDER_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "outsiders"


def fetch_outsiders(cache_dir=DEFAULT_OUTSIDER_CACHE, log=print):
    """Download amoebax-data from Debian and keep the outsider sprites in cache_dir."""
    cache_dir = Path(cache_dir)
    if all((cache_dir / f"{n}.png").is_file() for n in OUTSIDER_FACE_BOXES):
        return cache_dir
    with debian_packages.downloaded([OUTSIDER_PACKAGE], cache_dir, log) as (tmp, debs):
        debian_packages.unpack(debs, tmp / "x")
        staged = tmp / "outsiders"
        staged.mkdir()
        for name in OUTSIDER_FACE_BOXES:
            shutil.copyfile(tmp / "x" / OUTSIDER_DIR / f"{name}.png", staged / f"{name}.png")
        debian_packages.install(staged, cache_dir)
    return cache_dir


def load_outsiders(cache_dir=DEFAULT_OUTSIDER_CACHE, names=None):
    """Outsider sprites as demo_cast.Sprite objects (character = their name, lower case)."""
    from app.training.demo_cast import Sprite
    out = []
    for name in names or OUTSIDER_FACE_BOXES:
        rgba = np.asarray(Image.open(Path(cache_dir) / f"{name}.png").convert("RGBA"))
        out.append(Sprite(name.lower(), name.lower(), "default", "default", rgba, OUTSIDER_FACE_BOXES[name]))
    return out


# Validation made as hard as the test: one training expression per character (where it has
# two or more) is moved out of training and shown only in validation, so the unknown threshold
# is calibrated on faces the head has not seen, as the test's unseen expressions and outfit are.
VAL_HELD_OUT_SPRITES = ("eileen vhappy", "sylvie blue surprised")


def demo_sprite_plan(split, hold_out_val=True):
    """(sprite keys, background names) of a demo split, with VAL_HELD_OUT_SPRITES moved to val."""
    from app.training import demo_cast
    spec = demo_cast.SPLITS[split]
    sprites = tuple(spec["sprites"])
    if hold_out_val and split == "train":
        sprites = tuple(k for k in sprites if k not in VAL_HELD_OUT_SPRITES)
    if hold_out_val and split == "val":
        # Held-out expressions for the characters that have one; the rest as before.
        held = {k.split(" ")[0] for k in VAL_HELD_OUT_SPRITES}
        sprites = VAL_HELD_OUT_SPRITES + tuple(k for k in sprites if k.split(" ")[0] not in held)
    return sprites, tuple(spec["backgrounds"])


def _composite_faces(rng, sprites, photos, count, size, label_of, source, margin):
    from app.training import demo_cast
    names = sorted(photos)
    for _ in range(count):
        if rng.random() < 0.6:
            background = demo_cast.photo_crop(rng, photos[names[rng.integers(len(names))]], size)
        else:
            background = demo_cast.synthetic_background(rng, size)
        n = 1 if rng.random() < 0.7 or len(sprites) < 2 else 2
        chosen = [sprites[j] for j in rng.choice(len(sprites), n, replace=False)]
        comp = demo_cast.compose(rng, chosen, background, size)
        for character, box in comp.faces:
            yield FaceCrop(crop_face(comp.image, box, margin), label_of(character), source)


def demo_face_crops(split, count, seed=0, margin=DEFAULT_MARGIN, cast_cache=None,
                    outsider_cache=DEFAULT_OUTSIDER_CACHE, outsider_share=0.25, size=(512, 384),
                    hold_out_val=True):
    """Yield FaceCrops cut at the known face boxes of demo-cast composites of `split`, plus outsiders."""
    from app.training import demo_cast
    cast_cache = cast_cache or demo_cast.DEFAULT_CACHE
    n_outsiders = round(count * outsider_share)
    if split == "test" or not hold_out_val:
        # The test split is exactly demo_cast's, composed by its own generator.
        for comp in demo_cast.composites(split, count - n_outsiders, seed, size, cache_dir=cast_cache):
            for character, box in comp.faces:
                yield FaceCrop(crop_face(comp.image, box, margin), character, f"demo-cast {split}")
    else:
        keys, backgrounds = demo_sprite_plan(split, hold_out_val)
        rng = np.random.default_rng(seed + _CAST_SALT[split])
        yield from _composite_faces(rng, demo_cast.load_sprites(cast_cache, keys),
                                    demo_cast.load_backgrounds(cast_cache, backgrounds),
                                    count - n_outsiders, size, lambda c: c, f"demo-cast {split}", margin)
    if n_outsiders <= 0:
        return
    # Outsiders go through the same composer, on the split's own backgrounds, so that
    # nothing but the character tells them apart from the cast.
    rng = np.random.default_rng(seed + _OUTSIDER_SALT[split])
    people = load_outsiders(outsider_cache, OUTSIDER_SPLITS[split])
    photos = demo_cast.load_backgrounds(cast_cache, demo_cast.SPLITS[split]["backgrounds"])
    for _ in range(n_outsiders):
        if rng.random() < 0.6:
            background = demo_cast.photo_crop(rng, photos[sorted(photos)[rng.integers(len(photos))]], size)
        else:
            background = demo_cast.synthetic_background(rng, size)
        comp = demo_cast.compose(rng, [people[rng.integers(len(people))]], background, size)
        for _, box in comp.faces:
            yield FaceCrop(crop_face(comp.image, box, margin), UNKNOWN_LABEL, f"outsider {split}")


def describe_demo_faces(counts, seed, hold_out_val=True):
    """What a demo face data set holds and how to rebuild it (written as OUT/dataset.json)."""
    from app.training import demo_cast
    return {
        "command": (f"flask --app wsgi dataset demo-faces OUT --train {counts['train']} "
                    f"--val {counts['val']} --test {counts['test']} --seed {seed}"
                    + ("" if hold_out_val else " --no-hold-out-val")),
        "composites": counts, "seed": seed,
        "cast": {"source": f"Debian {' + '.join(demo_cast.PACKAGES)} (Expat)",
                 "splits": {k: dict(zip(("sprites", "backgrounds"),
                                        map(list, demo_sprite_plan(k, hold_out_val))))
                            for k in demo_cast.SPLITS},
                 "faces": "cut at the sprites' known face boxes, margin 0.3, plus photo or synthetic backgrounds"},
        "unknown": {"label": UNKNOWN_LABEL,
                    "source": f"Debian {OUTSIDER_PACKAGE} (GPL-2+): cartoon children of the amoebax game, "
                              "not anime cast; face boxes read off by hand",
                    "characters": {k: list(v) for k, v in OUTSIDER_SPLITS.items()},
                    "share_of_composites": 0.25,
                    "backgrounds": "the same split's backgrounds as the cast"},
    }


def build_demo_faces(out_dir, counts=None, seed=0, on_crop=None, hold_out_val=True, **kwargs):
    """Write OUT/{train,val,test}/<character or _unknown>/*.png from the demo cast and the outsiders."""
    counts = counts or {"train": 400, "val": 120, "test": 240}
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty: choose a new folder")
    stats = {}
    with staged_dir(out_dir) as staging:
        for split, count in counts.items():
            crops = demo_face_crops(split, count, seed, hold_out_val=hold_out_val, **kwargs)
            if on_crop:
                crops = (on_crop(c) or c for c in crops)
            # No near-duplicate removal: composites are distinct by construction (identical
            # crops still collapse, as files are named by their pixels' hash).
            stats[split] = write_crops(crops, staging / split, dedupe_bits=-1)
        description = describe_demo_faces(counts, seed, hold_out_val)
        description["faces"] = {k: v["labels"] for k, v in stats.items()}
        (staging / "dataset.json").write_text(json.dumps(description, indent=1) + "\n")
    return stats
