"""A contact sheet of renders (over a checkerboard, face box drawn) and of their face crops."""
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

THUMB = 160
CROP = 96
LABEL_W = 120


def _checkerboard(size, cell=12):
    yy, xx = np.mgrid[0:size, 0:size]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, 205, 150).astype(np.uint8)
    return Image.fromarray(np.stack([board] * 3, axis=-1)).convert("RGBA")


def face_crop(rgba, box, margin=0.25):
    """The square crop around the face box (x, y, w, h), grown by `margin` a side, over white."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    canvas = Image.new("RGBA", (round(side), round(side)), (255, 255, 255, 255))
    canvas.paste(Image.fromarray(rgba, "RGBA"), (-left, -top), Image.fromarray(rgba, "RGBA"))
    return canvas.convert("RGB")


def _renders(cache_dir, figure, count):
    metas = sorted((Path(cache_dir) / figure).glob("[0-9]*.json"))
    metas = metas[::max(1, len(metas) // count)][:count]  # spread over all the poses
    for meta in metas:
        yield np.array(Image.open(meta.with_suffix(".png")).convert("RGBA")), json.loads(meta.read_text())


def contact_sheet(cache_dir, out_path, per_figure=10):
    """Write a PNG: for each figure a row of renders, then a row of its face crops."""
    figures = sorted(p.name for p in Path(cache_dir).iterdir() if p.is_dir())
    row_h = THUMB + CROP + 12
    sheet = Image.new("RGB", (LABEL_W + per_figure * THUMB, row_h * len(figures)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    board = _checkerboard(THUMB)
    for row, figure in enumerate(figures):
        y = row * row_h
        draw.text((6, y + 6), figure, fill=(0, 0, 0))
        for col, (rgba, meta) in enumerate(_renders(cache_dir, figure, per_figure)):
            thumb = board.copy()
            image = Image.fromarray(rgba, "RGBA")
            scale = THUMB / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
            thumb.alpha_composite(image)
            x, fy, w, h = (v * scale for v in meta["face_box"])
            ImageDraw.Draw(thumb).rectangle([x, fy, x + w, fy + h], outline=(230, 0, 0, 255), width=2)
            sheet.paste(thumb.convert("RGB"), (LABEL_W + col * THUMB, y))
            crop = face_crop(rgba, meta["face_box"]).resize((CROP, CROP), Image.LANCZOS)
            sheet.paste(crop, (LABEL_W + col * THUMB + (THUMB - CROP) // 2, y + THUMB + 4))
            draw.text((LABEL_W + col * THUMB + 2, y + THUMB - 12), f"#{meta['pose_id']} z{meta['framing']['zoom']:.2f}",
                      fill=(0, 0, 0))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path)
    return out_path
