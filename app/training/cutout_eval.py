"""Evaluate a cutout model on held-out image/mask pairs: metrics JSON and an overlay sheet."""
import heapq
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from app.storage.files import write_json
from app.training import cutout_metrics
from app.training.classifier_eval import save_png


def overlay(image, prob, truth):
    """Prediction over the image: kept pixels as they are, removed ones darkened; misses in red."""
    keep = prob >= 0.5
    out = image.astype(np.float32) * np.where(keep, 1.0, 0.25)[..., None]
    wrong = keep != (truth >= 0.5)
    out[wrong] = out[wrong] * 0.3 + np.array([255, 0, 0]) * 0.7
    return out.astype(np.uint8)


def sheet(rows, tile=(224, 168)):
    """A PNG sheet: per row the picture, the truth and the prediction overlay."""
    w, h = tile
    canvas = Image.new("RGB", (3 * w, len(rows) * h + 16), "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(("picture", "truth", "prediction (red = wrong)")):
        draw.text((j * w + 4, 2), title, fill="black")
    for i, (image, truth, prob) in enumerate(rows):
        tiles = (image, np.repeat(truth[..., None], 3, 2), overlay(image, prob, truth / 255.0))
        for j, t in enumerate(tiles):
            canvas.paste(Image.fromarray(t).resize(tile), (j * w, 16 + i * h))
    return canvas


def evaluate(cutter, pairs, out_dir=None, sample=6, progress=None):
    """Mean measures (cutout_metrics.scores) of a Cutter over (image, mask[, groups]) items, and per group;
    writes report.json, sheet.png (the first `sample` items) and worst.png (the lowest IoUs) to out_dir."""
    scores = []
    by_group = {}
    rows, worst = [], []  # worst: a heap of (-iou, index, row) holding the `sample` lowest IoUs
    for index, (image, mask, *groups) in enumerate(progress(pairs) if progress else pairs):
        prob = cutter.probability(image)
        scores.append(cutout_metrics.scores(prob, mask.astype(np.float32) / 255.0))
        for group in groups[0] if groups else ():
            by_group.setdefault(group, []).append((scores[-1]["iou"], scores[-1]["mae"]))
        if len(rows) < sample:
            rows.append((image, mask, prob))
        heapq.heappush(worst, (-scores[-1]["iou"], index, (image, mask, prob)))
        if len(worst) > sample:
            heapq.heappop(worst)
    report = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
    report["worst_iou"] = float(min(s["iou"] for s in scores))
    report["count"] = len(pairs)
    if by_group:
        report["groups"] = {g: {"iou": round(float(np.mean([s[0] for s in v])), 4),
                                "mae": round(float(np.mean([s[1] for s in v])), 4), "count": len(v)}
                            for g, v in sorted(by_group.items())}
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "report.json", report)
        save_png(sheet(rows), out_dir / "sheet.png")
        save_png(sheet([row for _, _, row in sorted(worst, reverse=True)]), out_dir / "worst.png")
    return report
