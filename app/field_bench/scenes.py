"""The bench's own backgrounds and props: painted versions of photos, drawn scenes, and salient
things drawn in a cartoon style that are not characters (jellyfish, bubbles, sparkles, hearts,
petals, speech bubbles with text). None of these filters or drawings is used by training.
"""
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
         "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
LINES = ("Wait!", "Eh?!", "Sugoi...", "Let's go!", "Hmm?", "No way!", "Thank you!", "まって!",
         "えっ?!", "やった!", "真的吗?", "Good morning~")


def cover(rgb, size, rng):
    """A random crop of `rgb` scaled to cover `size` (w, h) exactly."""
    w, h = size
    ph, pw = rgb.shape[:2]
    scale = max(w / pw, h / ph) * rng.uniform(1.0, 1.3)
    cw, ch = min(pw, int(np.ceil(w / scale))), min(ph, int(np.ceil(h / scale)))
    x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    return cv2.resize(np.ascontiguousarray(rgb[y:y + ch, x:x + cw]), (w, h), interpolation=cv2.INTER_CUBIC)


def stylise(rgb, rng):
    """A painted or cel-shaded version of a photo (filters the training never applies)."""
    kind = int(rng.integers(3))
    if kind == 0:  # painterly: OpenCV's stylization
        return cv2.stylization(rgb, sigma_s=float(rng.uniform(30, 80)), sigma_r=float(rng.uniform(0.3, 0.6)))
    if kind == 1:  # posterised flat colours with dark edges, as anime backgrounds are often drawn
        smooth = cv2.bilateralFilter(rgb, 9, 60, 7)
        levels = int(rng.integers(4, 8))
        flat = (smooth // (256 // levels)) * (256 // levels) + 128 // levels
        edges = cv2.adaptiveThreshold(cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 7), 255,
                                      cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 3)
        return (flat.astype(np.float32) * (0.35 + 0.65 * edges[..., None] / 255.0)).astype(np.uint8)
    return cv2.edgePreservingFilter(rgb, flags=1, sigma_s=float(rng.uniform(40, 100)), sigma_r=0.4)


def _gradient(size, top, bottom):
    w, h = size
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(col, (h, w, 3)).astype(np.uint8).copy()


def drawn_scene(rng, size):
    """A procedurally drawn anime-style scene, size (w, h): sky with clouds and hills, night sky,
    underwater with light rays, or a room of flat shapes. Returns (RGB, kind)."""
    w, h = size
    kind = ("sky", "night", "underwater", "room")[int(rng.integers(4))]
    if kind == "sky":
        img = Image.fromarray(_gradient(size, (90, 150, 235), (200, 225, 250)))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 8))):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h * 0.5), rng.uniform(h * 0.04, h * 0.1)
            for _ in range(5):
                ox, oy = rng.uniform(-2, 2) * r, rng.uniform(-0.5, 0.5) * r
                draw.ellipse((cx + ox - r, cy + oy - r, cx + ox + r, cy + oy + r), fill=(250, 250, 255))
        for layer in range(2):
            base = h * (0.6 + 0.15 * layer)
            xs = np.linspace(0, w, 12)
            ys = base + rng.uniform(-0.12, 0.05, 12) * h
            colour = (70 + 40 * layer, 150 + 30 * layer, 80)
            draw.polygon([(0, h)] + list(zip(xs, ys)) + [(w, h)], fill=colour, outline=(30, 60, 30))
        return np.asarray(img), kind
    if kind == "night":
        img = _gradient(size, (10, 15, 50), (60, 40, 110))
        for _ in range(int(w * h / 4000)):
            x, y = int(rng.integers(w)), int(rng.integers(h))
            cv2.circle(img, (x, y), int(rng.integers(1, 3)), (255, 255, 220), -1)
        cx, cy, r = int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.1, 0.3) * h), int(h * 0.08)
        cv2.circle(img, (cx, cy), r, (250, 240, 200), -1)
        return img, kind
    if kind == "underwater":
        img = _gradient(size, (40, 170, 200), (10, 40, 110)).astype(np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        for _ in range(int(rng.integers(3, 7))):  # light rays from the surface
            x0, slope, width = rng.uniform(0, w), rng.uniform(-0.5, 0.5), rng.uniform(0.02, 0.08) * w
            ray = np.exp(-((xx - x0 - slope * yy) / width) ** 2) * (1 - yy / h)
            img += ray[..., None] * np.array([60, 70, 50], np.float32)
        img = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 6))):  # rocks and weed on the floor
            x, r = rng.uniform(0, w), rng.uniform(0.05, 0.15) * h
            draw.ellipse((x - 2 * r, h - r, x + 2 * r, h + r), fill=(60, 60, 90), outline=(20, 20, 40), width=3)
        return np.asarray(img), kind
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(150, 240, 3)))
    draw = ImageDraw.Draw(img)
    floor = h * rng.uniform(0.6, 0.8)
    draw.rectangle((0, floor, w, h), fill=tuple(int(c) for c in rng.integers(90, 170, 3)),
                   outline=(40, 30, 30), width=3)
    for _ in range(int(rng.integers(2, 5))):  # windows, shelves, a door
        x0, y0 = rng.uniform(0, w * 0.85), rng.uniform(0.05, 0.5) * h
        x1, y1 = x0 + rng.uniform(0.08, 0.25) * w, y0 + rng.uniform(0.1, 0.35) * h
        draw.rectangle((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(60, 250, 3)),
                       outline=(40, 30, 30), width=4)
    return np.asarray(img), kind


def _font(size):
    for path in FONTS:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default()


def prop(rng, height):
    """One salient thing in a cartoon style that is not a character: (RGBA array, kind)."""
    kind = ("jellyfish", "bubbles", "sparkle", "heart", "petals", "speech")[int(rng.integers(6))]
    s = max(16, int(height))
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in rng.integers(80, 256, 3))
    outline = (30, 30, 50, 255)
    line = max(2, s // 60)
    if kind == "jellyfish":
        top = s * 0.45
        draw.pieslice((s * 0.15, s * 0.05, s * 0.85, top * 2 - s * 0.05), 180, 360, fill=colour + (190,),
                      outline=outline, width=line)
        for k in range(5):
            x = s * (0.22 + 0.14 * k)
            pts = [(x + np.sin(t * 3 + k) * s * 0.04, top + t * s * 0.5) for t in np.linspace(0, 1, 12)]
            draw.line(pts, fill=colour + (230,), width=line + 1)
    elif kind == "bubbles":
        for _ in range(int(rng.integers(3, 9))):
            r = rng.uniform(0.04, 0.18) * s
            x, y = rng.uniform(r, s - r), rng.uniform(r, s - r)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(200, 230, 255, 70), outline=(240, 250, 255, 230),
                         width=line)
            draw.ellipse((x - r * 0.5, y - r * 0.6, x - r * 0.1, y - r * 0.25), fill=(255, 255, 255, 230))
    elif kind == "sparkle":
        for _ in range(int(rng.integers(1, 5))):
            r = rng.uniform(0.1, 0.35) * s
            x, y = rng.uniform(r, s - r), rng.uniform(r, s - r)
            q = r * 0.22
            draw.polygon([(x, y - r), (x + q, y - q), (x + r, y), (x + q, y + q), (x, y + r), (x - q, y + q),
                          (x - r, y), (x - q, y - q)], fill=(255, 250, 200, 255), outline=(250, 200, 80, 255))
    elif kind == "heart":
        r = s * 0.25
        draw.ellipse((s * 0.5 - 2 * r, s * 0.2, s * 0.5, s * 0.2 + 2 * r), fill=colour + (255,))
        draw.ellipse((s * 0.5, s * 0.2, s * 0.5 + 2 * r, s * 0.2 + 2 * r), fill=colour + (255,))
        draw.polygon([(s * 0.5 - 2 * r + 2, s * 0.2 + r * 1.3), (s * 0.5 + 2 * r - 2, s * 0.2 + r * 1.3),
                      (s * 0.5, s * 0.92)], fill=colour + (255,))
    elif kind == "petals":
        for _ in range(int(rng.integers(4, 12))):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.03, 0.07) * s
            draw.ellipse((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=(255, 190, 210, 255),
                         outline=(220, 120, 150, 255))
    else:
        text = LINES[int(rng.integers(len(LINES)))]
        font = _font(max(10, s // 6))
        box = draw.textbbox((0, 0), text, font=font)
        tw, th = box[2] - box[0], box[3] - box[1]
        img = Image.new("RGBA", (int(tw * 1.6) + 20, int(th * 2.6) + 20), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        bw, bh = img.size
        draw.ellipse((4, 4, bw - 4, bh * 0.75), fill=(255, 255, 255, 255), outline=(0, 0, 0, 255), width=line)
        draw.polygon([(bw * 0.35, bh * 0.68), (bw * 0.5, bh * 0.7), (bw * 0.3, bh - 2)], fill=(255, 255, 255, 255),
                     outline=(0, 0, 0, 255))
        draw.text(((bw - tw) / 2 - box[0], bh * 0.375 - th / 2 - box[1]), text, font=font, fill=(0, 0, 0, 255))
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return np.asarray(img), kind
