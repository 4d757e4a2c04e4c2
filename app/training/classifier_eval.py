"""Evaluate a classifier model directory on labelled face crops, through the serving code.

Faces whose folder is a label of the model are "cast"; every other folder (`_unknown`, or
characters the model never learnt) is "outside the cast" and should be flagged unknown.
Writes report.json, confusion.png and training_curve.png (drawn with Pillow).
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.storage.files import atomic_path, write_json
from app.training.face_dataset import kind_of, load_folder

OUTSIDE = "(outside cast)"
UNKNOWN_COLUMN = "unknown"
# Thresholds at which the report shows the unknown trade-off (the model's own is added).
TRADEOFF_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def test_folder(data_dir):
    """DATA/test when it exists (the held-out split of a demo-style layout), else DATA itself."""
    data_dir = Path(data_dir)
    return data_dir / "test" if (data_dir / "test").is_dir() else data_dir


def metrics_from_results(results, true_labels, labels, threshold=None):
    """Held-out figures from Identifier.identify results and the true folder labels.

    threshold: the model's unknown threshold, added to the trade-off table (known faces called
    unknown vs outsiders rejected, by the best score) beside TRADEOFF_THRESHOLDS."""
    index = {lab: i for i, lab in enumerate(labels)}
    rows = labels + [OUTSIDE]
    cols = labels + [UNKNOWN_COLUMN]
    confusion = np.zeros((len(rows), len(cols)), np.int64)
    top1 = top5 = accepted_right = false_unknown = n_cast = rejected = n_out = 0
    per_pred = np.zeros(len(labels), np.int64)  # argmax predictions over cast faces, per label
    per_right = np.zeros(len(labels), np.int64)
    per_true = np.zeros(len(labels), np.int64)
    per_unknown = np.zeros(len(labels), np.int64)
    cast_best, outside_best = [], []
    for result, truth in zip(results, true_labels):
        names = [p["label"] for p in result["predictions"]]
        col = len(labels) if result["unknown"] else index[names[0]]
        if truth in index:
            t = index[truth]
            n_cast += 1
            per_true[t] += 1
            per_pred[index[names[0]]] += 1
            right = names[0] == truth
            top1 += right
            per_right[t] += right
            top5 += truth in names[:5]
            false_unknown += result["unknown"]
            per_unknown[t] += result["unknown"]
            accepted_right += right and not result["unknown"]
            confusion[t, col] += 1
            cast_best.append(result["predictions"][0]["score"])
        else:
            outside_best.append(result["predictions"][0]["score"])
            n_out += 1
            rejected += result["unknown"]
            confusion[len(labels), col] += 1
    per_class = {}
    for i, lab in enumerate(labels):
        per_class[lab] = {"support": int(per_true[i]),
                          "precision": round(per_right[i] / per_pred[i], 4) if per_pred[i] else None,
                          "recall": round(per_right[i] / per_true[i], 4) if per_true[i] else None,
                          "flagged_unknown": round(per_unknown[i] / per_true[i], 4) if per_true[i] else None}

    def rate(a, b):
        return round(a / b, 4) if b else None

    thresholds = sorted(set(TRADEOFF_THRESHOLDS) | ({float(threshold)} if threshold is not None else set()))
    tradeoff = [{"threshold": round(t, 4),
                 "known_called_unknown": rate(sum(b < t for b in cast_best), n_cast),
                 "outsiders_rejected": rate(sum(b < t for b in outside_best), n_out)} for t in thresholds]

    return {
        "cast_faces": n_cast,
        "outside_faces": n_out,
        "top1": rate(top1, n_cast),
        "top5": rate(top5, n_cast),
        "top1_accepted": rate(accepted_right, n_cast),  # right and not flagged unknown
        "false_unknown_rate": rate(false_unknown, n_cast),
        "unknown_rejection_rate": rate(rejected, n_out),
        "per_class": per_class,
        "unknown_tradeoff": tradeoff,
        "confusion": {"rows": rows, "columns": cols, "counts": confusion.tolist()},
    }


def kind_figures(results, true_labels, kinds, labels, threshold):
    """Held-out figures per crop kind, plus each kind's trade-off (known faces named right and
    accepted vs outsiders and boxes on no face answered unknown) along thresholds 0-1."""
    out = {}
    for kind in sorted(set(kinds)):
        sel = [i for i, k in enumerate(kinds) if k == kind]
        metrics = metrics_from_results([results[i] for i in sel], [true_labels[i] for i in sel], labels, threshold)
        metrics.pop("confusion")
        metrics.pop("unknown_tradeoff")
        best = np.array([results[i]["predictions"][0]["score"] for i in sel])
        right = np.array([results[i]["predictions"][0]["label"] == true_labels[i] for i in sel])
        known = np.array([true_labels[i] in labels for i in sel])
        curve = []
        for t in np.linspace(0.0, 1.0, 101):
            curve.append([round(float(t), 3),
                          round(float((right & (best >= t))[known].mean()), 4) if known.any() else None,
                          round(float((best < t)[~known].mean()), 4) if (~known).any() else None])
        metrics["tradeoff"] = curve  # [threshold, known named and accepted, outsiders rejected]
        out[kind] = metrics
    return out


def draw_tradeoff(per_kind, threshold, path, title):
    """A PNG per crop kind's curve: known faces named and accepted (y) against outsiders and boxes on
    no face answered unknown (x), with the operating point marked."""
    w, h, pad = 600, 480, 60
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = _font(13)
    x0, x1, y0, y1 = pad, w - 20, h - pad, 52
    lo = 0.5  # both axes from 50%: below that nothing is worth shipping
    d.rectangle([x0, y1, x1, y0], outline="black")

    def px(v):
        return x0 + (max(v, lo) - lo) / (1 - lo) * (x1 - x0)

    def py(v):
        return y0 - (max(v, lo) - lo) / (1 - lo) * (y0 - y1)

    for v in (0.6, 0.7, 0.8, 0.9, 1.0):
        d.line([(px(v), y0), (px(v), y1)], fill=(230, 230, 230))
        d.line([(x0, py(v)), (x1, py(v))], fill=(230, 230, 230))
        d.text((px(v) - 12, y0 + 6), f"{v:.0%}", fill="black", font=font)
        d.text((x0 - 40, py(v) - 7), f"{v:.0%}", fill="black", font=font)
    colours = {"cascade": (200, 60, 60), "drawn": (60, 60, 200), "known": (40, 150, 40)}
    for k, (kind, metrics) in enumerate(sorted(per_kind.items())):
        colour = colours.get(kind, (100, 100, 100))
        points = [(px(r), py(a)) for _, a, r in metrics["tradeoff"] if a is not None and r is not None]
        if len(points) > 1:
            d.line(points, fill=colour, width=2)
        a, r = metrics["top1_accepted"], metrics["unknown_rejection_rate"]
        if a is not None and r is not None:
            d.ellipse([px(r) - 5, py(a) - 5, px(r) + 5, py(a) + 5], outline=colour, width=2)
        counts = f" ({metrics['cast_faces']} known, {metrics['outside_faces']} not)" if "cast_faces" in metrics else ""
        d.text((x0 + 10, y0 - 56 + 16 * k), (f"{kind}: {a:.1%} named / {r:.1%} rejected"
                                            if a is not None and r is not None else kind) + counts,
               fill=colour, font=font)
    d.text((10, 6), f"{title} (circle: operating point {threshold:.3f})", fill="black", font=font)
    d.text((x0 + 60, h - 24), "outsiders and boxes on no face answered unknown", fill="black", font=font)
    d.text((4, y1 - 20), "known faces named right and accepted", fill="black", font=font)
    save_png(img, path)


def _font(size):
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def draw_confusion(confusion, path, title="confusion (rows: truth, columns: answer)"):
    """A confusion-matrix PNG: cells shaded by share of their row, with counts."""
    rows, cols, counts = confusion["rows"], confusion["columns"], np.array(confusion["counts"])
    cell, left, top = 72, 150, 80
    img = Image.new("RGB", (left + cell * len(cols) + 20, top + cell * len(rows) + 20), "white")
    d = ImageDraw.Draw(img)
    font, small = _font(15), _font(13)
    d.text((10, 10), title, fill="black", font=font)
    for j, name in enumerate(cols):
        d.text((left + j * cell + 4, top - 24), name[:9], fill="black", font=small)
    for i, name in enumerate(rows):
        d.text((10, top + i * cell + cell // 2 - 8), name[:18], fill="black", font=small)
        total = max(1, counts[i].sum())
        for j in range(len(cols)):
            share = counts[i, j] / total
            shade = int(255 - 200 * share)
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle([x0, y0, x0 + cell - 2, y0 + cell - 2], fill=(shade, shade, 255), outline="grey")
            d.text((x0 + 8, y0 + cell // 2 - 8), str(int(counts[i, j])),
                   fill="white" if share > 0.6 else "black", font=font)
    save_png(img, path)


def draw_curves(history, path):
    """A training-curve PNG: train and validation loss (left axis) and validation top-1 (right axis) per epoch."""
    w, h, pad = 640, 360, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = _font(13)
    if not history:
        d.text((pad, h // 2), "no training history in the card", fill="black", font=font)
        save_png(img, path)
        return
    epochs = [e["epoch"] for e in history]
    losses = [e["train_loss"] for e in history] + [e["val_loss"] for e in history]
    lo, hi = 0.0, max(losses) * 1.05 or 1.0
    x0, x1, y0, y1 = pad, w - pad, h - pad, pad
    d.rectangle([x0, y1, x1, y0], outline="black")

    def px(epoch):
        return x0 + (epoch - epochs[0]) / max(1, epochs[-1] - epochs[0]) * (x1 - x0)

    def py(value, vmin, vmax):
        return y0 - (value - vmin) / (vmax - vmin) * (y0 - y1)

    series = [("train loss*", [e["train_loss"] for e in history], (200, 60, 60), lo, hi),
              ("val loss", [e["val_loss"] for e in history], (60, 60, 200), lo, hi),
              ("val top-1", [e["val_top1"] for e in history], (40, 150, 40), 0.0, 1.0)]
    for k, (name, values, colour, vmin, vmax) in enumerate(series):
        points = [(px(e), py(v, vmin, vmax)) for e, v in zip(epochs, values) if v == v]
        if len(points) > 1:
            d.line(points, fill=colour, width=2)
        d.text((x0 + 10 + 110 * k, 15), name, fill=colour, font=font)
    d.text((x0, y0 + 8), f"epoch {epochs[0]}", fill="black", font=font)
    d.text((x0 + 150, y0 + 8), "* includes the outlier-exposure term", fill="grey", font=font)
    d.text((x1 - 70, y0 + 8), f"epoch {epochs[-1]}", fill="black", font=font)
    d.text((4, y1 - 4), f"{hi:.2f}", fill="black", font=font)
    d.text((4, y0 - 12), "0", fill="black", font=font)
    d.text((x1 + 4, y1 - 4), "1.0", fill=(40, 150, 40), font=font)
    save_png(img, path)


def save_png(img, path):
    """Save a PIL image as PNG atomically."""
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def evaluate_items(identifier, items, progress=None, batch=32):
    """Metrics of an Identifier over [(image, true label)] items."""
    results = []
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        results += identifier.identify([im for im, _ in chunk])
        if progress:
            progress(len(chunk))
    truth = [lab for _, lab in items]
    metrics = metrics_from_results(results, truth, identifier.labels, identifier.threshold)
    kinds = [kind_of(im) for im, _ in items]
    if set(kinds) != {"known"}:
        metrics["per_kind"] = kind_figures(results, truth, kinds, identifier.labels, identifier.threshold)
    return metrics


def evaluate_model_dir(model_dir, data_dir, out_dir, progress=None):
    """Evaluate model_dir on DATA (its test/ split when present); write the report and plots to out_dir."""
    from app.inference.identify import Identifier
    identifier = Identifier.load(model_dir)
    folder = test_folder(data_dir)
    items = load_folder(folder)
    if not items:
        raise ValueError(f"no face images under {folder}/<label>/")
    metrics = evaluate_items(identifier, items, progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"model": str(model_dir), "model_name": identifier.card.get("name"),
              "model_version": identifier.card.get("version"), "data": str(folder),
              "unknown_threshold": identifier.threshold, **metrics}
    write_json(out_dir / "report.json", report)
    draw_confusion(metrics["confusion"], out_dir / "confusion.png")
    if "per_kind" in metrics:
        draw_tradeoff(metrics["per_kind"], identifier.threshold, out_dir / "tradeoff.png", f"{folder.name} split")
    draw_curves(identifier.card.get("training", {}).get("history", []), out_dir / "training_curve.png")
    return report
