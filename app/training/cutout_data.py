"""Image/mask pairs for the cutout networks: folders of pairs, augmentation, tensors."""
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from app.demo_data.compose import shift_hue
from app.inference.cutout import normalise

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
    if rng.random() < 0.5:
        # Hue rotation: an outfit seen only in blue should not make green unfamiliar.
        img = shift_hue(img, rng.uniform(0, 1))
    if rng.random() < 0.3:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(40, 90)))
        img = Image.open(buf).convert("RGB")
    return np.asarray(img), np.asarray(msk)


def to_tensors(images, masks, arch="u2netp"):
    """Lists of HxWx3 / HxW uint8 -> (N x 3 x H x W normalised for `arch`, N x 1 x H x W in [0, 1])."""
    x = torch.from_numpy(np.stack([normalise(im, arch) for im in images]))
    y = torch.from_numpy(np.stack(masks)).float().div(255.0).unsqueeze(1)
    return x, y


class Batcher:
    """The one way training pictures become batches, for every source: `draw()` gives one
    (image, mask) pair (uint8 numpy), this augments it and makes the tensors for `arch`."""

    def __init__(self, draw, size, seed=0, arch="u2netp"):
        self.draw = draw
        self.size = size
        self.arch = arch  # the network's input normalisation (app.inference.cutout.normalise)
        self.rng = np.random.default_rng(seed)

    def batch(self, n):
        """n augmented pictures as (N x 3 x S x S normalised, N x 1 x S x S masks in [0, 1])."""
        pairs = [augment(self.rng, *self.draw(), self.size) for _ in range(n)]
        return to_tensors(*zip(*pairs), self.arch)


class FolderPairs:
    """Random (image, mask) pairs from a folder of pairs (loaded once into memory).

    A distillation pool (app/training/distil.py) also holds teacher/ maps: the target is then the
    mask blended with the teacher's map by `teacher_weight`.
    """

    def __init__(self, data_dir, seed=0, teacher_weight=0.0):
        self.rng = np.random.default_rng(seed)
        paths = folder_pairs(data_dir)
        self.pairs = [load_pair(*p) for p in paths]
        if teacher_weight:
            from app.training.distil import target
            maps = [Path(data_dir, "teacher", m.name) for _, m in paths]
            missing = [str(p) for p in maps if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"teacher_weight {teacher_weight} needs a teacher map for every "
                                        f"pair; {len(missing)} missing, e.g. {missing[0]}")
            self.pairs = [(image, target(mask, np.asarray(Image.open(t).convert("L")), teacher_weight))
                          for (image, mask), t in zip(self.pairs, maps)]

    def draw(self):
        return self.pairs[int(self.rng.integers(0, len(self.pairs)))]


def folder_stream(data_dir, size, seed=0, arch="u2netp", teacher_weight=0.0):
    """Endless augmented batches from a folder of pairs."""
    return Batcher(FolderPairs(data_dir, seed, teacher_weight).draw, size, seed, arch)


def demo_batches(mix, size, seed=0, arch="u2netp"):
    """Endless augmented batches of the demo-data engine's training composites (app/demo_data/stream.py)."""
    from app.demo_data import stream
    return Batcher(stream.demo_stream(mix, size, seed).pair, size, seed + 1, arch)


def validation_pairs(data_dir, count, seed=0):
    """A fixed random fifth (at most `count`) of a folder's pairs, for choosing the best checkpoint."""
    pairs = folder_pairs(data_dir)
    chosen = np.random.default_rng(seed).permutation(len(pairs))[:max(1, min(count, len(pairs) // 5))]
    return [load_pair(*pairs[i]) for i in chosen]


def heldout_items(data_dir, count=60):
    """(image, mask, groups) items of a folder of held-out pairs (ungrouped)."""
    return [(*load_pair(*p), ()) for p in folder_pairs(data_dir)[:count]]


def heldout(data, count=60):
    """(description, items) of held-out pairs: a folder of images/ + masks/ or one of the demo
    engine's HELDOUT_SETS (what `evaluate cutout`, `train cutout --heldout` and
    scripts/eval_cutout_onnx.py score on)."""
    if Path(data, "images").is_dir():
        items = heldout_items(data, count)
        return f"{len(items)} held-out pairs from {data}", items
    from app.demo_data import stream
    items = stream.heldout_items(data, count)
    return stream.describe_heldout(data, len(items)), items
