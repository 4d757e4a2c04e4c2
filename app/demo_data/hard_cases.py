"""Training pictures of the kinds the field bench found hard, drawn from training sources only.

The field bench (app/field_bench) showed where the first anime round fails: pictures framed as
people frame them (a bust, a small figure in a large scene, a wallpaper, overlapping figures),
painted backgrounds, and things drawn in a cartoon style that are not the character (props,
sparkles, text boxes, a cast shadow). This module draws pictures of those kinds for training,
written apart from the bench's compositor: its own placement, its own props and its own painting
filters (mean shift and a k-means palette, a watercolour wash; the bench's OpenCV stylisation,
posterised cel shading and edge-preserving smoothing are never applied here), and only from the
figures and backgrounds a training stream is given.

The mask stays exact: figures are combined by their alpha; a prop in front cuts the mask by its
alpha; shadows and props are background (mask 0); every figure is foreground, one partly out of
frame included.
"""
import io

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.demo_data.figures import Composite

FRAMINGS = ("bust", "whole", "small", "wallpaper", "group")
FRAMING_WEIGHTS = (0.2, 0.2, 0.2, 0.2, 0.2)


def painted(rng, rgb):
    """A background turned into flat paint: mean-shift regions and a small palette, or a wash."""
    h, w = rgb.shape[:2]
    scale = min(1.0, 360 / max(h, w))
    small = cv2.resize(rgb, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.6:
        small = cv2.pyrMeanShiftFiltering(small, sp=int(rng.integers(6, 16)), sr=int(rng.integers(20, 45)))
        k = int(rng.integers(6, 17))
        data = small.reshape(-1, 3).astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 8, 1.0)
        _, labels, centres = cv2.kmeans(data, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
        small = centres[labels.ravel()].reshape(small.shape).clip(0, 255).astype(np.uint8)
    else:
        # Watercolour: soft colour, a paper grain, pigment pooled darker along colour changes.
        small = cv2.medianBlur(small, 7)
        grain = rng.normal(0, 6, small.shape[:2]).astype(np.float32)
        edges = cv2.Laplacian(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), cv2.CV_32F, ksize=3)
        wash = small.astype(np.float32) * 0.85 + 255 * 0.15 + grain[..., None] - np.abs(edges)[..., None] * 0.3
        small = wash.clip(0, 255).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without scalable default font
        return ImageFont.load_default()


def _star(cx, cy, r, points, turn):
    angles = turn + np.arange(points * 2) * np.pi / points
    radii = np.where(np.arange(points * 2) % 2 == 0, r, r * 0.45)
    return [(float(cx + a * np.cos(t)), float(cy + a * np.sin(t))) for a, t in zip(radii, angles)]


def _blob(rng, cx, cy, r):
    n = int(rng.integers(7, 12))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = r * rng.uniform(0.6, 1.0, n)
    return [(float(cx + a * np.cos(t)), float(cy + a * np.sin(t))) for a, t in zip(radii, angles)]


def prop(rng, side):
    """One cartoon prop as RGBA (side x side): a cel-shaded blob with an ink outline, a star, a
    ring bubble, a spray of sparkles, a text box, or a flower; mask 0 wherever it lands."""
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in rng.integers(40, 256, 3))
    ink = (20, 20, 30, 255)
    c, r = side / 2, side * 0.42
    width = max(1, side // 40)
    kind = rng.integers(6)
    if kind == 0:
        outline = _blob(rng, c, c, r)
        draw.polygon(outline, fill=colour + (255,), outline=ink, width=width)
        shade = tuple(int(v * 0.7) for v in colour) + (255,)
        draw.polygon([(x + r * 0.2, y + r * 0.2) for x, y in _blob(rng, c, c, r * 0.5)], fill=shade)
        draw.ellipse((c - r * 0.5, c - r * 0.6, c - r * 0.2, c - r * 0.3), fill=(255, 255, 255, 230))
    elif kind == 1:
        draw.polygon(_star(c, c, r, int(rng.integers(4, 7)), rng.uniform(0, np.pi)),
                     fill=colour + (255,), outline=ink if rng.random() < 0.6 else None, width=width)
    elif kind == 2:
        draw.ellipse((c - r, c - r, c + r, c + r), fill=colour + (int(rng.integers(60, 160)),),
                     outline=(255, 255, 255, 230), width=max(2, side // 25))
        draw.arc((c - r * 0.7, c - r * 0.7, c + r * 0.3, c + r * 0.3), 190, 250, fill=(255, 255, 255, 255),
                 width=max(2, side // 20))
    elif kind == 3:
        for _ in range(int(rng.integers(3, 9))):
            x, y, s = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(side * 0.04, side * 0.14)
            draw.polygon(_star(x, y, s, 4, 0.0), fill=(255, 255, int(rng.integers(150, 256)), 255))
    elif kind == 4:
        box = (side * 0.05, side * 0.2, side * 0.95, side * 0.75)
        draw.rounded_rectangle(box, radius=side // 10, fill=(255, 255, 255, 255), outline=ink, width=width)
        draw.polygon([(side * 0.3, side * 0.74), (side * 0.45, side * 0.74), (side * 0.25, side * 0.92)],
                     fill=(255, 255, 255, 255), outline=ink)
        font = _font(max(8, side // 9))
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ!?"
        for row in range(int(rng.integers(1, 4))):
            text = "".join(letters[i] for i in rng.integers(0, len(letters), int(rng.integers(3, 9))))
            draw.text((side * 0.12, side * (0.26 + 0.14 * row)), text, fill=ink, font=font)
    else:
        petals = int(rng.integers(5, 8))
        for k in range(petals):
            t = 2 * np.pi * k / petals
            px, py = c + r * 0.55 * np.cos(t), c + r * 0.55 * np.sin(t)
            draw.ellipse((px - r * 0.4, py - r * 0.4, px + r * 0.4, py + r * 0.4), fill=colour + (255,),
                         outline=ink, width=width)
        draw.ellipse((c - r * 0.3, c - r * 0.3, c + r * 0.3, c + r * 0.3), fill=(250, 210, 60, 255))
    if rng.random() < 0.5:
        img = img.rotate(float(rng.uniform(-40, 40)), resample=Image.BILINEAR)
    return img


def _scaled(rng, figure, height):
    """The figure's RGBA at `height` pixels high (maybe flipped), as a PIL image, and its face box."""
    sh, sw = figure.rgba.shape[:2]
    scale = height / sh
    img = Image.fromarray(figure.rgba).resize((max(1, round(sw * scale)), max(1, round(sh * scale))),
                                              Image.LANCZOS)
    fx, fy, fw, fh = figure.face_box or (0, 0, 0, 0)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
        fx = sw - fx - fw
    return img, (fx * scale, fy * scale, fw * scale, fh * scale) if figure.face_box else None


def _placements(rng, framing, figures, w, h):
    """[(figure, height, x, y)] for a framing: where each figure's top-left corner goes."""
    out = []
    if framing == "bust":
        f = figures[0]
        height = h * rng.uniform(1.7, 3.0)
        width = height * f.rgba.shape[1] / f.rgba.shape[0]
        out.append((f, height, w / 2 - width / 2 + rng.uniform(-0.2, 0.2) * w, h * rng.uniform(0.0, 0.2)))
    elif framing == "whole":
        f = figures[0]
        height = h * rng.uniform(0.7, 0.95)
        width = height * f.rgba.shape[1] / f.rgba.shape[0]
        out.append((f, height, rng.uniform(0, max(1.0, w - width)), rng.uniform(0, h - height)))
    elif framing == "small":
        f = figures[0]
        height = h * rng.uniform(0.12, 0.35)
        width = height * f.rgba.shape[1] / f.rgba.shape[0]
        out.append((f, height, rng.uniform(0, max(1.0, w - width)), rng.uniform(0, h - height)))
    elif framing == "wallpaper":
        f = figures[0]
        height = h * rng.uniform(0.75, 1.15)
        width = height * f.rgba.shape[1] / f.rgba.shape[0]
        side = rng.uniform(0.02, 0.2) * w if rng.random() < 0.5 else w - width - rng.uniform(0.02, 0.2) * w
        out.append((f, height, side, h * rng.uniform(0.0, 0.25)))
    else:  # group: overlapping figures, the outer ones maybe partly out of frame
        n = len(figures)
        heights = [h * rng.uniform(0.6, 1.05) for _ in figures]
        widths = [hh * f.rgba.shape[1] / f.rgba.shape[0] for hh, f in zip(heights, figures)]
        step = np.mean(widths) * rng.uniform(0.45, 0.85)
        left = w / 2 - (step * (n - 1) + widths[-1]) / 2 + rng.uniform(-0.25, 0.25) * w
        for i, f in enumerate(figures):
            out.append((f, heights[i], left + i * step, h * rng.uniform(0.0, 0.35)))
    return out


def _paste_layer(size, img, x, y):
    """An RGBA layer of `size` (w, h) with `img` at (x, y), cut at the edges."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    layer.paste(img, (int(round(x)), int(round(y))))
    return layer


def _shadow(rng, layer):
    """A soft dark copy of a figure's silhouette, sheared onto the ground or offset onto a wall."""
    alpha = np.asarray(layer)[..., 3].astype(np.float32) / 255
    h, w = alpha.shape
    if rng.random() < 0.5:  # on a wall: offset
        dx, dy = rng.uniform(-0.06, 0.06) * w, rng.uniform(0.0, 0.04) * h
        m = np.float32([[1, 0, dx], [0, 1, dy]])
    else:  # on the ground: squashed and sheared from the feet
        ys = np.nonzero(alpha.max(axis=1) > 0.5)[0]
        foot = float(ys.max()) if len(ys) else h
        squash, shear = rng.uniform(0.15, 0.4), rng.uniform(-1.2, 1.2)
        m = np.float32([[1, shear * squash, -shear * squash * foot], [0, squash, foot * (1 - squash)]])
    shadow = cv2.warpAffine(alpha, m, (w, h))
    k = int(max(3, w * 0.01)) | 1
    return cv2.GaussianBlur(shadow, (k, k), 0) * rng.uniform(0.3, 0.6)


def _rim_light(rng, layer):
    """Lighten a figure's outer band, as a back light does."""
    rgba = np.asarray(layer).astype(np.float32)
    alpha = rgba[..., 3] / 255
    k = int(max(3, layer.width * 0.006)) | 1
    inner = cv2.erode(alpha, np.ones((k, k), np.uint8))
    band = np.clip(alpha - inner, 0, 1)[..., None]
    tint = np.array([255, 255, rng.uniform(200, 255)], np.float32)
    rgba[..., :3] = rgba[..., :3] * (1 - band * 0.7) + tint * band * 0.7
    return Image.fromarray(rgba.clip(0, 255).astype(np.uint8), "RGBA")


def _graded(rng, rgb):
    """A colour grade of the whole picture: per-channel gain, gamma and lift."""
    x = rgb.astype(np.float32) / 255
    gain = rng.uniform(0.85, 1.15, 3)
    gamma = rng.uniform(0.8, 1.25)
    lift = rng.uniform(-0.04, 0.06, 3)
    return ((np.clip(x * gain, 0, 1) ** gamma + lift).clip(0, 1) * 255).astype(np.uint8)


def _finished(rng, rgb):
    """What sharing does to a picture: a JPEG of some quality, or a downscale and upscale."""
    if rng.random() < 0.5:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=int(rng.integers(50, 93)))
        return np.asarray(Image.open(buf).convert("RGB"))
    if rng.random() < 0.4:
        h, w = rgb.shape[:2]
        f = rng.uniform(0.5, 0.85)
        small = cv2.resize(rgb, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return rgb


def hard_case(rng, figures, background, framing=None):
    """A Composite of `figures` (1 for most framings, 2-3 for "group") over `background` (RGB,
    its size is the picture's), in a framing of FRAMINGS, with shadows, props, rim light,
    colour grade and a sharing finish drawn at random."""
    h, w = background.shape[:2]
    framing = framing or FRAMINGS[rng.choice(len(FRAMINGS), p=FRAMING_WEIGHTS)]
    if framing != "group":
        figures = figures[:1]
    base = background
    if rng.random() < 0.3:  # depth of field
        k = int(rng.integers(2, 7)) * 2 + 1
        base = cv2.GaussianBlur(base, (k, k), 0)
    canvas = base.astype(np.float32)
    mask = np.zeros((h, w), np.float32)
    props = [prop(rng, int(max(16, min(w, h) * rng.uniform(0.06, 0.3)))) for _ in range(int(rng.integers(0, 6)))]
    front = [rng.random() < 0.3 for _ in props]
    for p, is_front in zip(props, front):
        if not is_front:
            canvas = _over(canvas, _paste_layer((w, h), p, rng.uniform(-0.1, 0.95) * w, rng.uniform(-0.1, 0.95) * h))
    faces, keys = [], []
    for figure, height, x, y in _placements(rng, framing, figures, w, h):
        img, face = _scaled(rng, figure, height)
        layer = _paste_layer((w, h), img, x, y)
        if rng.random() < 0.4:
            shadow = _shadow(rng, layer)
            canvas = canvas * (1 - shadow[..., None])
        if rng.random() < 0.3:
            layer = _rim_light(rng, layer)
        alpha = np.asarray(layer)[..., 3].astype(np.float32) / 255
        canvas = _over(canvas, layer)
        mask = 1 - (1 - mask) * (1 - alpha)
        keys.append(figure.key)
        if face:
            bx, by = int(round(x + face[0])), int(round(y + face[1]))
            bw, bh = int(round(face[2])), int(round(face[3]))
            if bx >= 0 and by >= 0 and bx + bw <= w and by + bh <= h:
                faces.append((figure.character, (bx, by, bw, bh)))
    for p, is_front in zip(props, front):
        if is_front:
            layer = _paste_layer((w, h), p, rng.uniform(-0.1, 0.95) * w, rng.uniform(-0.1, 0.95) * h)
            canvas = _over(canvas, layer)
            mask = mask * (1 - np.asarray(layer)[..., 3].astype(np.float32) / 255)
    image = canvas.clip(0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        image = _graded(rng, image)
    image = _finished(rng, image)
    return Composite(image, (mask * 255 + 0.5).astype(np.uint8), faces, tuple(keys),
                     extra={"framing": framing})


def _over(canvas, layer):
    """A float RGB canvas with an RGBA PIL layer composited over it."""
    rgba = np.asarray(layer).astype(np.float32)
    a = rgba[..., 3:4] / 255
    return canvas * (1 - a) + rgba[..., :3] * a


def background(rng, pick_photo, size, paint_share=0.4):
    """A hard-case background of `size` (w, h): a training photo or backdrop, painted in
    `paint_share` of the pictures."""
    from app.demo_data.compose import photo_crop
    rgb = photo_crop(rng, pick_photo(rng), size)
    return painted(rng, rgb) if rng.random() < paint_share else rgb


SHAPES = ((16, 9), (4, 3), (1, 1), (3, 4), (9, 16))


def shape(rng, long_side):
    """(w, h) of a picture whose longer side is `long_side`, in one of SHAPES."""
    a, b = SHAPES[rng.integers(len(SHAPES))]
    return (long_side, round(long_side * b / a)) if a >= b else (round(long_side * a / b), long_side)

