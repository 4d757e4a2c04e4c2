"""Image/mask pairs for U2-Net: from a folder or from the demo-cast composer, with augmentation."""
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from app.cutout import MEAN, STD, normalise
from app.training import demo_cast

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def folder_pairs(data_dir):
    """[(image_path, mask_path)] for DATA/images/* with a mask of the same stem in DATA/masks/."""
    data_dir = Path(data_dir)
    masks = {p.stem: p for p in (data_dir / "masks").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = [(p, masks[p.stem]) for p in sorted((data_dir / "images").glob("*"))
             if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in masks]
    if not pairs:
        raise FileNotFoundError(f"no image/mask pairs in {data_dir} (expected images/* and masks/* "
                                "with the same stems)")
    return pairs


def load_pair(image_path, mask_path):
    image = np.asarray(Image.open(image_path).convert("RGB"))
    mask = np.asarray(Image.open(mask_path).convert("L"))
    if image.shape[:2] != mask.shape:
        raise ValueError(f"{image_path} and {mask_path} differ in size")
    return image, mask


def augment(rng, image, mask, size):
    """Paper-style resize + random crop + flip, plus colour jitter and JPEG artefacts; -> size x size."""
    big = int(size * rng.uniform(1.0, 1.25))
    img = Image.fromarray(image).resize((big, big), Image.BILINEAR)
    msk = Image.fromarray(mask).resize((big, big), Image.BILINEAR)
    x, y = rng.integers(0, big - size + 1, 2)
    img, msk = img.crop((x, y, x + size, y + size)), msk.crop((x, y, x + size, y + size))
    if rng.random() < 0.5:
        img, msk = img.transpose(Image.FLIP_LEFT_RIGHT), msk.transpose(Image.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(rng.uniform(0.75, 1.25))
    if rng.random() < 0.3:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(40, 90)))
        img = Image.open(buf).convert("RGB")
    return np.asarray(img), np.asarray(msk)


def to_tensors(images, masks):
    """Lists of HxWx3 / HxW uint8 -> (N x 3 x H x W normalised, N x 1 x H x W in [0, 1])."""
    x = torch.stack([normalise(im) for im in images])
    y = torch.from_numpy(np.stack(masks)).float().div(255.0).unsqueeze(1)
    return x, y


class DemoCastStream:
    """Endless augmented training batches composed from the demo cast's training split."""

    # Landscape, square and portrait pictures: inference squashes each to a square, so train on that.
    SHAPES = ((448, 336), (384, 384), (336, 448))

    def __init__(self, size, seed=0, cache_dir=demo_cast.DEFAULT_CACHE):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self._streams = [demo_cast.composites("train", 10**9, seed=seed + i, size=shape,
                                              cache_dir=cache_dir)
                         for i, shape in enumerate(self.SHAPES)]

    def batch(self, n):
        items = [next(self._streams[self.rng.integers(len(self._streams))]) for _ in range(n)]
        pairs = [augment(self.rng, c.image, c.mask, self.size) for c in items]
        return to_tensors(*zip(*pairs))


class FolderStream:
    """Endless augmented batches from a folder of image/mask pairs (loaded once into memory)."""

    def __init__(self, data_dir, size, seed=0):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.pairs = [load_pair(*p) for p in folder_pairs(data_dir)]

    def batch(self, n):
        chosen = self.rng.integers(0, len(self.pairs), n)
        pairs = [augment(self.rng, *self.pairs[i], self.size) for i in chosen]
        return to_tensors(*zip(*pairs))


def fixed_set(split, count, seed=0, size=(448, 336)):
    """A fixed list of (image, mask) demo-cast composites for evaluation (no augmentation)."""
    return [(c.image, c.mask) for c in demo_cast.composites(split, count, seed=seed, size=size)]


__all__ = ["MEAN", "STD", "folder_pairs", "load_pair", "augment", "to_tensors",
           "DemoCastStream", "FolderStream", "fixed_set"]
