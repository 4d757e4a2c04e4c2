"""Composing figures onto backgrounds: the one place where demo pictures and their masks are made.

Every source of the demo-data engine hands over Figures (exact alpha); `compose` places them and
keeps the mask and face boxes exact, `composites` is the one loop that draws evaluation pictures,
and the training-only backgrounds (mosaics, drawn clutter, pasted objects) live here too.
"""
import cv2
import numpy as np
from PIL import Image, ImageDraw

from app.demo_data.figures import Composite


def shift_hue(img, amount):
    """Rotate a PIL RGB image's hue by `amount` of a full turn."""
    h, sat, v = img.convert("HSV").split()
    h = h.point(lambda value: (value + int(amount * 256)) % 256)
    return Image.merge("HSV", (h, sat, v)).convert("RGB")


def synthetic_background(rng, size):
    """A flat colour, a two-colour gradient or smoothed noise, size = (w, h)."""
    w, h = size
    kind = rng.integers(3)
    if kind == 0:
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (h, w, 3)).copy()
    if kind == 1:
        a, b = rng.integers(0, 256, (2, 3)).astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        return (a + (b - a) * t[..., None]).astype(np.uint8)
    cells = int(rng.integers(4, 32))
    small = rng.integers(0, 256, (cells, max(1, cells * w // h), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def photo_crop(rng, photo, size):
    w, h = size
    ph, pw = photo.shape[:2]
    scale = rng.uniform(1.0, 1.6) * max(w / pw, h / ph)
    cw, ch = min(pw, round(w / scale)), min(ph, round(h / scale))
    x, y = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
    crop = Image.fromarray(photo[y:y + ch, x:x + cw])
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(crop.resize((w, h), Image.BILINEAR))


def compose(rng, figures, background, size):
    """Place 1-2 figures (scaled, maybe flipped, side by side) on a background of `size` (w, h)."""
    w, h = size
    canvas = Image.fromarray(background).convert("RGBA")
    mask = np.zeros((h, w), np.uint8)
    faces = []
    n = len(figures)
    for i, sprite in enumerate(figures):
        sh, sw = sprite.rgba.shape[:2]
        # Visual-novel framing: the sprite's height is 0.7-1.4 of the picture's, cut at the bottom.
        scale = rng.uniform(0.7, 1.4) * h / sh
        scale = min(scale, (w / n) / sw * 1.1)
        nw, nh = max(1, round(sw * scale)), max(1, round(sh * scale))
        img = Image.fromarray(sprite.rgba).resize((nw, nh), Image.LANCZOS)
        fx, fy, fw, fh = sprite.face_box or (0, 0, 0, 0)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
            fx = sw - fx - fw
        slot_w = w / n
        x = round(i * slot_w + rng.uniform(0, max(0.0, slot_w - nw))) if nw < slot_w else \
            round(i * slot_w + (slot_w - nw) / 2)
        y = round(rng.uniform(0.0, 0.35) * h)
        # Over the picture, the part left of its edge cut off: the canvas stays opaque, so a
        # second figure composes over the first exactly as the mask below says.
        canvas.alpha_composite(img, (max(x, 0), y), (max(-x, 0), 0))
        alpha = np.zeros((h, w), np.uint8)
        src = np.asarray(img)[..., 3]
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + nw), min(h, y + nh)
        alpha[y0:y1, x0:x1] = src[y0 - y:y1 - y, x0 - x:x1 - x]
        # What the picture shows: this figure over those before it (where two soft edges overlap,
        # more than either alpha alone; for one figure, or an opaque one, the figure's own alpha).
        mask = 255 - ((255 - mask.astype(np.uint16)) * (255 - alpha) + 127) // 255
        mask = mask.astype(np.uint8)
        box = (x + fx * scale, y + fy * scale, fw * scale, fh * scale)
        bx, by, bw, bh = (int(round(v)) for v in box)
        if sprite.face_box and bx >= 0 and by >= 0 and bx + bw <= w and by + bh <= h:
            faces.append((sprite.character, (bx, by, bw, bh)))
    return Composite(np.asarray(canvas.convert("RGB")), mask, faces, tuple(s.key for s in figures))


def composites(rng, figures, photos, count, size, photo_share=0.6, per_picture=(0.7, 2)):
    """Yield `count` Composites of 1-2 `figures` over crops of `photos` ({name: RGB array}) or
    synthetic backgrounds; two figures in (1 - per_picture[0]) of them when there are two."""
    names = sorted(photos)
    for _ in range(count):
        if names and rng.random() < photo_share:
            name = names[rng.integers(len(names))]
            background = photo_crop(rng, photos[name], size)
        else:
            name, background = "synthetic", synthetic_background(rng, size)
        n = 1 if rng.random() < per_picture[0] or len(figures) < 2 else per_picture[1]
        chosen = [figures[j] for j in rng.choice(len(figures), n, replace=False)]
        comp = compose(rng, chosen, background, size)
        comp.background = name
        yield comp


def warp_figure(rng, rgba):
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
    img = Image.fromarray(synthetic_background(rng, size))
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


def pick_photo(rng, photos, backdrops):
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
        photo = pick_photo(rng, photos, backdrops)
        if vertical_cuts:
            out[:, a:b] = photo_crop(rng, photo, (b - a, h))
        else:
            out[a:b] = photo_crop(rng, photo, (w, b - a))
    return out


def training_background(rng, photos, size, backdrops=()):
    """A training-only background, size = (w, h): more varied than the fixed validation/test ones.

    Photo crops (a third of them hue-rotated), photo mosaics, drawn clutter and the composer's
    flat, gradient and noise backgrounds. Validation and test composites keep the composer's own mix.
    """
    kind = rng.random()
    if kind < 0.45:
        background = photo_crop(rng, pick_photo(rng, photos, backdrops), size)
        if rng.random() < 0.33:
            background = np.asarray(shift_hue(Image.fromarray(background), rng.uniform(0, 1)))
        return background
    if kind < 0.6:
        return _mosaic(rng, photos, size, backdrops)
    if kind < 0.75:
        return _clutter(rng, size)
    return synthetic_background(rng, size)


def paste_objects(rng, background, objects, count):
    """`count` objects over a copy of `background` (H x W x 3), each flipped at random and scaled
    to 15-60% of the picture's height, anywhere with at least a third of it inside."""
    out = Image.fromarray(background)
    w, h = out.size
    for index in rng.choice(len(objects), count):
        obj = Image.fromarray(objects[index])
        if rng.random() < 0.5:
            obj = obj.transpose(Image.FLIP_LEFT_RIGHT)
        scale = h * rng.uniform(0.15, 0.6) / max(obj.size)
        obj = obj.resize((max(1, round(obj.width * scale)), max(1, round(obj.height * scale))),
                         Image.BILINEAR)
        x = int(rng.integers(-obj.width // 3, w - obj.width * 2 // 3 + 1))
        y = int(rng.integers(-obj.height // 3, h - obj.height * 2 // 3 + 1))
        out.paste(obj, (x, y), obj)
    return np.asarray(out)
