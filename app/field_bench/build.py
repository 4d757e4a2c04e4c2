"""Write the field bench to a folder, and read it back.

    <root>/<split>/<set>/NNNN.jpg|png   the picture as a user sends it
    <root>/<split>/<set>/NNNN.mask.png  exact coverage of the characters (255 = character)
    <root>/<split>/<set>/NNNN.inst.png  1 + index of the figure on top (0 = background)
    <root>/<split>/<set>/NNNN.json      framing, effects, figures, faces, provenance

Picture i of a set is drawn from a generator seeded by (split, set, i) alone, so an interrupted
build resumes to exactly the same pictures; each picture's JSON is written last, atomically, and
marks it done.
"""
import json
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from app.field_bench import compose, sources
from app.storage.files import atomic_path, write_json

SETS = ("cast", "live2d", "drawings")
DEFAULT_COUNT = 30  # per set and split
DEFAULT_ROOT = sources.DEFAULT_CACHE / "bench"


def picture_rng(split, name, index):
    return np.random.default_rng([zlib.crc32(f"field-bench/{split}/{name}".encode()), index])


def make_picture(split, name, index, figures, photos):
    """Picture `index` of one set and split (a compose.BenchPicture with its background's provenance)."""
    rng = picture_rng(split, name, index)
    framing, size = compose.pick_framing(rng)
    background, where = compose.background_for(rng, photos, size)
    picture = compose.compose(rng, figures, background, framing, size)
    picture.meta["background"] = where
    return picture


def _save_png(array, path):
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def write_picture(picture, folder, index):
    """Write one picture's files, its JSON last."""
    folder = Path(folder)
    stem = folder / f"{index:04d}"
    if picture.jpeg_quality:
        with atomic_path(stem.with_suffix(".jpg")) as tmp:
            tmp.write_bytes(sources.encode_jpeg(picture.image, picture.jpeg_quality))
        image_name = stem.with_suffix(".jpg").name
    else:
        _save_png(picture.image, stem.with_suffix(".png"))
        image_name = stem.with_suffix(".png").name
    _save_png(picture.mask, stem.with_suffix(".mask.png"))
    _save_png(picture.instances, stem.with_suffix(".inst.png"))
    write_json(stem.with_suffix(".json"), dict(picture.meta, image=image_name,
                                               faces=[{"figure": k, "box": list(box)} for k, box in picture.faces]))


def build(root=DEFAULT_ROOT, count=DEFAULT_COUNT, cache_dir=sources.DEFAULT_CACHE, splits=sources.SPLITS,
          sets=SETS, log=print):
    """Make every missing picture of the bench; returns {split/set: count}."""
    root = Path(root)
    made = {}
    for split in splits:
        photos = sources.load_backgrounds(split, cache_dir)
        for name in sets:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            todo = [i for i in range(count) if not (folder / f"{i:04d}.json").is_file()]
            if todo:
                figures = sources.load_figures(name, split, cache_dir)
                for i in todo:
                    write_picture(make_picture(split, name, i, figures, photos), folder, i)
                log(f"{split}/{name}: made {len(todo)} pictures in {folder}")
            made[f"{split}/{name}"] = count
    return made


def load(root, split, sets=SETS, count=None):
    """Items of one split: dicts with set, index, image (RGB), mask, instances, faces, meta."""
    items = []
    for name in sets:
        folder = Path(root) / split / name
        metas = sorted(folder.glob("[0-9][0-9][0-9][0-9].json"))[:count]
        if not metas:
            raise FileNotFoundError(f"no bench pictures in {folder}: run `flask --app wsgi bench build`")
        for path in metas:
            meta = json.loads(path.read_text(encoding="utf-8"))
            stem = path.with_suffix("")
            items.append({
                "set": name, "index": int(stem.name), "meta": meta,
                "image": np.asarray(Image.open(folder / meta["image"]).convert("RGB")),
                "mask": np.asarray(Image.open(f"{stem}.mask.png")),
                "instances": np.asarray(Image.open(f"{stem}.inst.png")),
                "faces": [(f["figure"], tuple(f["box"])) for f in meta["faces"]],
            })
    return items


def contact_sheet(items, path, tile=(240, 160), columns=6):
    """A PNG of pictures with their masks' outlines in red, labelled by set and framing."""
    import cv2
    from PIL import ImageDraw

    w, h = tile
    rows = (len(items) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * (h + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, item in enumerate(items):
        img = item["image"].copy()
        edges = cv2.Canny(item["mask"], 50, 150)
        edges = cv2.dilate(edges, np.ones((5, 5), np.uint8))
        img[edges > 0] = (255, 0, 0)
        for _, (x, y, bw, bh) in item["faces"]:
            cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 255, 0), max(2, img.shape[1] // 300))
        thumb = Image.fromarray(img)
        thumb.thumbnail(tile)
        x0, y0 = (i % columns) * w, (i // columns) * (h + 14)
        sheet.paste(thumb, (x0, y0))
        draw.text((x0 + 2, y0 + h), f"{item['set']} {item['index']} {item['meta']['framing']}", fill="black")
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
