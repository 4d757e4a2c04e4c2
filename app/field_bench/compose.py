"""The field bench's compositor, written apart from app/demo_data/compose.py.

What it does that the training compositor never does (see app/field_bench/README.md):
- framings people bring: head-and-shoulders, a whole figure, a small figure in a large scene,
  16:9 wallpapers, groups of 2-3 overlapping figures (one may stand partly out of frame), at the
  sizes of real pictures (720 to 1920 pixels wide) instead of a few hundred pixels;
- each figure tilted a little; cast shadows on the ground or wall (background: mask 0);
  rim light on the figure's edge; a depth-of-field blur of the background;
- props drawn in a cartoon style (scenes.prop), behind the figures or in front of them (where
  they cover a figure, the mask is cut by exactly their alpha);
- colour grading of the whole picture, then a phone's JPEG or a screenshot's rescale.
The mask stays exact throughout: every step that changes it is an alpha operation on it.
"""
from dataclasses import dataclass, field

import cv2
import numpy as np

from app.field_bench import scenes

FRAMINGS = {  # name -> (share, canvas sizes)
    "bust": (0.2, ((900, 1200), (1080, 1080), (1280, 720))),
    "full": (0.25, ((1080, 1350), (1200, 900), (1024, 1024))),
    "small": (0.15, ((1920, 1080),)),
    "wallpaper": (0.2, ((1920, 1080),)),
    "group": (0.2, ((1600, 1000), (1280, 960))),
}


@dataclass
class BenchPicture:
    image: np.ndarray  # H x W x 3 uint8, as a user would send it (after grading and degradation)
    mask: np.ndarray  # H x W uint8: the characters' exact coverage (255 = character)
    instances: np.ndarray  # H x W uint8: 1 + the index of the figure on top where characters cover >= 50%
    faces: list  # [(figure index, (x, y, w, h))] of faces in frame and not covered
    jpeg_quality: int | None = None  # the picture is stored as this JPEG (the degradation itself)
    meta: dict = field(default_factory=dict)


def _place_figure(rng, rgba, face_box, target_h, flip):
    """Scale (to target_h), flip and tilt a figure; returns (RGBA, face box or None)."""
    h, w = rgba.shape[:2]
    scale = target_h / h
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = cv2.resize(rgba, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    box = None if face_box is None else [v * scale for v in face_box]
    if flip:
        out = out[:, ::-1].copy()
        if box is not None:
            box[0] = nw - box[0] - box[2]
    angle = float(rng.uniform(-8, 8)) if rng.random() < 0.5 else 0.0
    if angle:
        # Rotate about the centre onto a canvas big enough to hold every corner.
        m = cv2.getRotationMatrix2D((nw / 2, nh / 2), angle, 1.0)
        cos, sin = abs(m[0, 0]), abs(m[0, 1])
        bw, bh = int(np.ceil(nh * sin + nw * cos)), int(np.ceil(nh * cos + nw * sin))
        m[0, 2] += bw / 2 - nw / 2
        m[1, 2] += bh / 2 - nh / 2
        out = cv2.warpAffine(out, m, (bw, bh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
        if box is not None:  # the face box's centre moves; its size is kept
            cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
            cx, cy = m @ np.array([cx, cy, 1.0])
            box = [cx - box[2] / 2, cy - box[3] / 2, box[2], box[3]]
    return out, box


def _paste(canvas, layer, x, y):
    """The (H x W x C) window of `layer` placed at (x, y) on a canvas of the same channels,
    as a full-canvas array (zeros outside)."""
    h, w = canvas.shape[:2]
    lh, lw = layer.shape[:2]
    full = np.zeros((h, w, layer.shape[2]), layer.dtype)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + lw), min(h, y + lh)
    if x1 > x0 and y1 > y0:
        full[y0:y1, x0:x1] = layer[y0 - y:y1 - y, x0 - x:x1 - x]
    return full


def _over(rgb, rgba):
    """rgba (full-canvas, float alpha in [0, 1] from uint8) composited over rgb (float)."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return rgb * (1 - a) + rgba[..., :3].astype(np.float32) * a


def _shadow(rng, full_alpha, size):
    """A cast shadow of a figure (full-canvas alpha in [0, 1]): squashed onto the ground behind its
    feet, or offset onto a wall; blurred."""
    w, h = size
    ys, xs = np.nonzero(full_alpha > 0.5)
    if not len(ys):
        return np.zeros((h, w), np.float32)
    bottom, left, right = ys.max(), xs.min(), xs.max()
    if rng.random() < 0.5 and bottom < h - 2:  # on the ground: flattened, sheared back from the feet
        squash, shear = rng.uniform(0.15, 0.4), rng.uniform(-1.2, 1.2)
        m = np.float32([[1, shear * squash, -shear * squash * bottom], [0, squash, bottom * (1 - squash)]])
    else:  # on a wall behind: the same shape offset
        dx, dy = rng.uniform(-0.06, 0.06) * w, rng.uniform(0.0, 0.04) * h
        m = np.float32([[1, 0, dx], [0, 1, dy]])
    shadow = cv2.warpAffine(full_alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    sigma = max(1.0, rng.uniform(0.004, 0.015) * (right - left + h) / 2)
    return cv2.GaussianBlur(shadow, (0, 0), sigma)


def _rim_light(rng, rgba):
    """Brighten a figure's edge band from one side with a light colour (its alpha unchanged)."""
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    width = max(2, int(min(rgba.shape[:2]) * rng.uniform(0.01, 0.03)))
    inner = cv2.erode(alpha, np.ones((width, width), np.uint8))
    band = cv2.GaussianBlur(np.clip(alpha - inner, 0, 1), (0, 0), width / 2) * alpha
    light = rng.integers(180, 256, 3).astype(np.float32)
    out = rgba.astype(np.float32)
    out[..., :3] += band[..., None] * rng.uniform(0.4, 0.9) * (light - out[..., :3])
    return np.clip(out, 0, 255).astype(np.uint8)


def _grade(rng, rgb):
    """Colour grading of a whole picture: tone curve, tint and saturation."""
    x = rgb.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.75, 1.3)
    x = x * rng.uniform(0.85, 1.15, 3)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.6, 1.4)
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)


def _layout(rng, framing, figures, size):
    """(figure index, target height, x, y, flip) for each figure of the picture."""
    w, h = size
    slots = []
    if framing == "group":
        n = min(len(figures), int(rng.integers(2, 4)))
        chosen = rng.choice(len(figures), n, replace=False)
        spacing = rng.uniform(0.18, 0.32) * w
        start = w / 2 - spacing * (n - 1) / 2 + rng.uniform(-0.1, 0.1) * w
        for k, idx in enumerate(chosen):
            th = rng.uniform(0.5, 0.85) * h
            slots.append((int(idx), th, start + k * spacing, rng.uniform(0.02, 0.3) * h))
        if rng.random() < 0.5:  # one stands partly out of frame
            idx, th, cx, y = slots[-1]
            slots[-1] = (idx, th, w * rng.uniform(0.95, 1.1), y)
    else:
        idx = int(rng.integers(len(figures)))
        if framing == "bust":
            th = rng.uniform(1.6, 2.6) * h  # the top 40-60% of the figure fills the frame
            slots.append((idx, th, rng.uniform(0.35, 0.65) * w, rng.uniform(0.0, 0.12) * h))
        elif framing == "full":
            th = rng.uniform(0.55, 0.9) * h
            slots.append((idx, th, rng.uniform(0.3, 0.7) * w, rng.uniform(0.02, 1.0) * (h - th)))
        elif framing == "small":
            th = rng.uniform(0.12, 0.3) * h
            slots.append((idx, th, rng.uniform(0.1, 0.9) * w, rng.uniform(0.05, 0.95) * (h - th)))
        else:  # wallpaper: at one side, maybe cut by the bottom edge
            th = rng.uniform(0.7, 1.1) * h
            side = rng.uniform(0.15, 0.35) if rng.random() < 0.5 else rng.uniform(0.65, 0.85)
            slots.append((idx, th, side * w, rng.uniform(0.0, 0.15) * h))
    return slots


def compose(rng, figures, background, framing, size, finish=True):
    """One bench picture of `figures` (Figures, exact alpha) over `background` (RGB, already the
    canvas size) in a framing of FRAMINGS. `finish=False` leaves out what changes the figures'
    own pixels (rim light, grading, rescale, JPEG; the same random draws are made), for tests."""
    w, h = size
    bg = background.astype(np.float32)
    effects = []
    if rng.random() < 0.25:
        bg = cv2.GaussianBlur(bg, (0, 0), rng.uniform(2, 6))
        effects.append("background blur")
    behind, in_front = [], []
    for _ in range(int(rng.integers(0, 5))):
        rgba, kind = scenes.prop(rng, rng.uniform(0.08, 0.35) * h)
        x, y = int(rng.integers(-rgba.shape[1] // 3, w)), int(rng.integers(-rgba.shape[0] // 3, h))
        (in_front if rng.random() < 0.3 else behind).append((kind, _paste(bg, rgba, x, y)))
    for _, full in behind:
        bg = _over(bg, full)

    placed = []
    for idx, target_h, cx, y in _layout(rng, framing, figures, size):
        fig = figures[idx]
        rgba, box = _place_figure(rng, fig.rgba, fig.face_box, target_h, bool(rng.random() < 0.5))
        if rng.random() < 0.3:
            lit = _rim_light(rng, rgba)
            rgba = lit if finish else rgba
            effects.append("rim light")
        x = int(round(cx - rgba.shape[1] / 2))
        if (rgba[-1, :, 3] > 127).mean() > 0.05:
            # A sprite cut straight at its bottom (visual-novel sprites, busts) stands on the
            # frame's bottom edge, as in any real picture of it; never floating mid-frame.
            y = max(y, h - rgba.shape[0])
        full = _paste(bg, rgba, x, int(round(y)))
        placed.append((idx, full, None if box is None else (box[0] + x, box[1] + int(round(y)), box[2], box[3])))
    for _, full, _ in placed:  # shadows first: they fall on the background, under every figure
        if rng.random() < 0.4:
            shadow = _shadow(rng, full[..., 3].astype(np.float32) / 255.0, size)
            bg *= 1 - rng.uniform(0.3, 0.6) * shadow[..., None]
            effects.append("cast shadow")

    image, cover = bg, np.zeros((h, w), np.float32)
    tops = np.zeros((h, w), np.uint8)
    for k, (_, full, _) in enumerate(placed):
        a = full[..., 3].astype(np.float32) / 255.0
        image = _over(image, full)
        cover = 1 - (1 - cover) * (1 - a)
        tops[a >= 0.5] = k + 1
    for kind, full in in_front:
        a = full[..., 3].astype(np.float32) / 255.0
        image = _over(image, full)
        cover *= 1 - a
        effects.append(f"{kind} in front")
    tops[cover < 0.5] = 0  # a figure's pixel only where the picture shows it at least half
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        graded = _grade(rng, image)
        image = graded if finish else image
        effects.append("colour grading")
    quality = None
    if rng.random() < 0.25:  # a screenshot of a scaled view
        f = rng.uniform(0.5, 0.8)
        if finish:
            small = cv2.resize(image, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
            image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        effects.append("rescaled")
    elif rng.random() < 0.75:
        quality = int(rng.integers(55, 93))
        effects.append(f"jpeg {quality}")
        quality = quality if finish else None

    faces = []
    for k, (_, _, box) in enumerate(placed):
        if box is None:
            continue
        bx, by, bw, bh = (int(round(v)) for v in box)
        if bx < 0 or by < 0 or bx + bw > w or by + bh > h or bw < 8:
            continue
        if (tops[by:by + bh, bx:bx + bw] == k + 1).mean() >= 0.5:
            faces.append((k, (bx, by, bw, bh)))
    mask = np.clip(np.rint(cover * 255), 0, 255).astype(np.uint8)
    meta = {"framing": framing, "size": [w, h], "effects": sorted(set(effects)),
            "figures": [figures[idx].key for idx, _, _ in placed],
            "props": [kind for kind, _ in behind] + [f"{kind} (in front)" for kind, _ in in_front]}
    return BenchPicture(image, mask, tops, faces, quality, meta)


def background_for(rng, photos, size):
    """A canvas-sized background: a wallpaper or photo crop (sometimes painted), or a drawn scene.
    Returns (RGB, provenance)."""
    kind = rng.random()
    if kind < 0.3:
        rgb, what = scenes.drawn_scene(rng, size)
        return rgb, f"procedural:{what}"
    names = sorted(photos)
    name = names[int(rng.integers(len(names)))]
    rgb = scenes.cover(photos[name], size, rng)
    if kind < 0.55:
        return scenes.stylise(rgb, rng), f"{name} (painted)"
    return rgb, name


def pick_framing(rng):
    names = list(FRAMINGS)
    shares = np.array([FRAMINGS[n][0] for n in names])
    framing = names[int(rng.choice(len(names), p=shares / shares.sum()))]
    sizes = FRAMINGS[framing][1]
    return framing, sizes[int(rng.integers(len(sizes)))]
