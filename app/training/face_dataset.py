"""Face data sets from an operator's material: image folders, videos and exported reports.

Layout in: `SRC/<label>/*` (images or videos) for labelled material, any tree for unlabelled
material, and `flask reports export` output (`DIR/<label>/<id>.png`, already face crops).
Layout out: `OUT/<label>/<hash>.png`, or `OUT/_unsorted/<hash>.png` to sort by hand.
"""
import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from app.inference import faces
from app.inference.face_crops import DEFAULT_MARGIN, crop_face, dhash, hamming, load_rgb
from app.storage.files import atomic_path, staged_dir

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg"}
UNSORTED = "_unsorted"
# Faces of characters outside the label set (training: outlier exposure; evaluation: "unknown").
UNKNOWN_LABEL = "_unknown"
# Margin around the detected box on each side, as a share of its width (the seed used 0.3).
# dHash distance (of 64 bits) at or below which two crops of one label count as the same picture.
DEFAULT_DUPLICATE_BITS = 4
# How a crop was cut (app/training/crop_kinds.py): a data set's file names start with it.
CROP_KINDS = ("cascade", "drawn", "known")
# Video frames are scaled so their longer side is at most this before detection.
VIDEO_MAX_SIDE = 1280


@dataclass
class FaceCrop:
    image: Image.Image  # RGB
    label: str | None
    source: str  # where it came from, for the build log
    kind: str | None = None  # how it was cut (app/training/crop_kinds.py); names its file when set


def crop_kind(path):
    """The crop kind a data-set file name starts with (`cascade-...png`), or "known" for older files."""
    head = Path(path).name.split("-", 1)[0]
    return head if head in CROP_KINDS else "known"


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
        if crop.kind:
            name = f"{crop.kind}-{name}"
        with atomic_path(target / name) as tmp:
            crop.image.save(tmp, format="PNG")
        stats["written"] += 1
        stats["labels"][label] = stats["labels"].get(label, 0) + 1
        if crop.kind:
            per_kind = stats.setdefault("kinds", {}).setdefault(crop.kind, {})
            per_kind[label] = per_kind.get(label, 0) + 1
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

    with staged_dir(out_dir, replace=False) as staging:
        return write_crops(counted(all_crops()), staging, dedupe_bits)


# --- reading a data set back ------------------------------------------------------------------

def kind_of(image):
    """The crop kind load_folder noted on an image ("known" for crops from elsewhere)."""
    return image.info.get("crop_kind", "known")


def load_folder(root):
    """[(PIL RGB image, label)] for DATA/<label>/* image files, labels sorted; `_unknown` kept, other `_` skipped."""
    root = Path(root)
    items = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        label = label_dir.name
        if label.startswith("_") and label != UNKNOWN_LABEL:
            continue
        for path in sorted(label_dir.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(path) as im:
                    image = im.convert("RGB")
                image.info["crop_kind"] = crop_kind(path)  # how it was cut, for per-kind figures
                items.append((image, label))
            except (OSError, ValueError):
                continue  # unreadable file: skipped, as the data-set builder would have
    return items
