"""Image/mask pairs for U2-Net: from a folder or from the demo-cast composer, with augmentation."""
import dataclasses
import io
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageEnhance

from app.cutout import MEAN, STD, normalise
from app.training import demo_cast
from app.training import distractors as distractor_art

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


def shift_hue(img, amount):
    """Rotate a PIL RGB image's hue by `amount` of a full turn."""
    h, sat, v = img.convert("HSV").split()
    h = h.point(lambda value: (value + int(amount * 256)) % 256)
    return Image.merge("HSV", (h, sat, v)).convert("RGB")


def warp_sprite(rng, rgba):
    """A sprite (H x W x 4) under a random shear, stretch and downward flare: new silhouettes.

    Seven training sprites teach the network their outlines; bending them makes it rely on what
    drawn characters look like instead (a skirt it never saw should still be foreground).
    """
    h, w = rgba.shape[:2]
    stretch = rng.uniform(0.75, 1.35)  # horizontal, relative to the height
    shear = rng.uniform(-0.25, 0.25)
    flare = rng.uniform(-0.2, 0.9)  # how much wider the bottom gets than the top
    out_w = int(np.ceil(w * stretch * (1 + max(flare, 0.0)) + abs(shear) * h))
    yy, xx = np.mgrid[0:h, 0:out_w].astype(np.float32)
    t = yy / h
    widen = stretch * (1 + flare * t ** 2)
    centre = out_w / 2 + shear * (yy - h / 2)
    map_x = (xx - centre) / widen + w / 2
    return cv2.remap(rgba, map_x, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _clutter(rng, size):
    """Random filled shapes, some outlined, over a synthetic base: busy drawn backgrounds."""
    w, h = size
    img = Image.fromarray(demo_cast.synthetic_background(rng, size))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 14))):
        x0, y0 = rng.integers(-w // 4, w, 1)[0], rng.integers(-h // 4, h, 1)[0]
        x1, y1 = x0 + rng.integers(w // 10, w // 2), y0 + rng.integers(h // 10, h // 2)
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        outline = (0, 0, 0) if rng.random() < 0.4 else None
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=fill, outline=outline, width=2)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=fill, outline=outline, width=2)
    return np.asarray(img)


def _pick(rng, photos, backdrops):
    """A photo; with backdrops, half the time one of those instead (the photos are what
    validation and test pictures show, so they must not be drowned out)."""
    pool = backdrops if len(backdrops) and rng.random() < 0.5 else photos
    return pool[rng.integers(len(pool))]


def _mosaic(rng, photos, size, backdrops=()):
    """Two to four photo crops side by side or stacked."""
    w, h = size
    n = int(rng.integers(2, 5))
    out = np.empty((h, w, 3), np.uint8)
    cuts = np.linspace(0, w if rng.random() < 0.5 else h, n + 1).round().astype(int)
    vertical_cuts = cuts[-1] == w
    for a, b in zip(cuts[:-1], cuts[1:]):
        photo = _pick(rng, photos, backdrops)
        if vertical_cuts:
            out[:, a:b] = demo_cast.photo_crop(rng, photo, (b - a, h))
        else:
            out[a:b] = demo_cast.photo_crop(rng, photo, (w, b - a))
    return out


def training_background(rng, photos, size, backdrops=()):
    """A training-only background, size = (w, h): more varied than the fixed validation/test ones.

    Photo crops (a third of them hue-rotated), photo mosaics, drawn clutter and the composer's
    flat, gradient and noise backgrounds. Validation and test composites keep the composer's own mix.
    """
    kind = rng.random()
    if kind < 0.45:
        background = demo_cast.photo_crop(rng, _pick(rng, photos, backdrops), size)
        if rng.random() < 0.33:
            background = np.asarray(shift_hue(Image.fromarray(background), rng.uniform(0, 1)))
        return background
    if kind < 0.6:
        return _mosaic(rng, photos, size, backdrops)
    if kind < 0.75:
        return _clutter(rng, size)
    return demo_cast.synthetic_background(rng, size)


def to_tensors(images, masks):
    """Lists of HxWx3 / HxW uint8 -> (N x 3 x H x W normalised, N x 1 x H x W in [0, 1])."""
    x = torch.stack([normalise(im) for im in images])
    y = torch.from_numpy(np.stack(masks)).float().div(255.0).unsqueeze(1)
    return x, y


class DemoCastStream:
    """Endless augmented training batches composed from the demo cast's training split."""

    def __init__(self, size, seed=0, cache_dir=demo_cast.DEFAULT_CACHE, warp=0.0, extra_art=False,
                 portraits=0.0, portrait_dir=None, backdrops=False, backdrop_dir=None,
                 clipart=0.0, clipart_dir=None, distractors=0.0, distractor_dir=None):
        self.size = size
        self.warp = warp  # share of sprites bent by warp_sprite
        self.portrait_share = portraits  # share of figures that are Wesnoth portraits
        self.rng = np.random.default_rng(seed)
        spec = demo_cast.SPLITS["train"]
        self.sprites = demo_cast.load_sprites(cache_dir, spec["sprites"])
        if extra_art:
            self.sprites += demo_cast.load_extra_art(cache_dir)
        self.portraits = []
        if portraits:
            from app.training import portraits as portrait_art
            self.portraits = portrait_art.load(portrait_dir or portrait_art.DEFAULT_CACHE, "train")
        self.clipart_share = clipart  # share of figures that are clip-art people
        self.clipart = []
        if clipart:
            from app.training import clipart as clipart_art
            self.clipart = clipart_art.load(clipart_dir or clipart_art.DEFAULT_CACHE)
        photos = demo_cast.load_backgrounds(cache_dir, spec["backgrounds"])
        self.photos = [photos[name] for name in sorted(photos)]
        self.backdrops = []
        if backdrops:
            from app.training import backdrops as backdrop_art
            self.backdrops = backdrop_art.load(backdrop_dir or backdrop_art.DEFAULT_CACHE)
        self.distractor_share = distractors  # share of pictures with objects pasted behind the figures
        self.objects = []
        if distractors:
            self.objects = distractor_art.load(distractor_dir or distractor_art.DEFAULT_CACHE)
        # Landscape, square and portrait pictures (inference squashes each to a square), composed
        # at about twice the training size: resizing the sprites is most of the data's cost.
        side = 2 * size
        self.shapes = ((side * 4 // 3, side), (side, side), (side, side * 4 // 3))

    def composite(self):
        shape = self.shapes[self.rng.integers(len(self.shapes))]
        background = training_background(self.rng, self.photos, shape, self.backdrops)
        if self.objects and self.rng.random() < self.distractor_share:
            background = distractor_art.paste(self.rng, background, self.objects, int(self.rng.integers(1, 4)))
        n = 1 if self.rng.random() < 0.7 else 2
        chosen = [self.sprites[j] for j in self.rng.choice(len(self.sprites), n, replace=False)]
        if self.portraits or self.clipart:
            chosen = [self._outsider(s) for s in chosen]
        if self.warp:
            chosen = [dataclasses.replace(s, rgba=warp_sprite(self.rng, s.rgba))
                      if self.rng.random() < self.warp else s for s in chosen]
        return demo_cast.compose(self.rng, chosen, background, shape)

    def _outsider(self, sprite):
        """A portrait or a clip-art figure in place of `sprite`, by their shares; else `sprite`."""
        r = self.rng.random()
        if r < self.portrait_share and self.portraits:
            return self.portraits[self.rng.integers(len(self.portraits))]
        if r < self.portrait_share + self.clipart_share and self.clipart:
            return self.clipart[self.rng.integers(len(self.clipart))]
        return sprite

    def batch(self, n):
        items = [self.composite() for _ in range(n)]
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


EVAL_SIZE = (448, 336)  # validation and held-out composites


def fixed_set(split, count, seed=0, size=EVAL_SIZE):
    """A fixed list of (image, mask) demo-cast composites for evaluation (no augmentation)."""
    return [(c.image, c.mask) for c in demo_cast.composites(split, count, seed=seed, size=size)]


__all__ = ["MEAN", "STD", "folder_pairs", "load_pair", "augment", "shift_hue", "training_background", "warp_sprite",
           "to_tensors",
           "DemoCastStream", "FolderStream", "fixed_set"]
