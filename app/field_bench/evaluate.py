"""Score cutout models on the field bench: whole pictures, whole pictures with faces as prompts,
and one character at a time; by set and by framing, with overlay sheets of the worst pictures."""
import time
from pathlib import Path

import numpy as np

from app.inference import prompts
from app.storage.files import atomic_path, write_json
from app.training import cutout_metrics


def figure_box(face, width, height):
    """The page's box for one character around its face (static/js/boxes.js figureBox)."""
    x, y, w, h = face
    left, right = max(0, x - 1.5 * w), min(width, x + 2.5 * w)
    top, bottom = max(0, y - 0.5 * h), min(height, y + 7 * h)
    return int(left), int(top), max(1, int(right - left)), max(1, int(bottom - top))


def _mean(rows, key):
    return round(float(np.mean([r[key] for r in rows])), 4) if rows else None


def summarise(rows, keys=("iou", "mae", "max_fbeta")):
    """Means by set and by framing, and over everything."""
    out = {"all": {k: _mean(rows, k) for k in keys} | {"count": len(rows)}}
    for field in ("set", "framing"):
        for value in sorted({r[field] for r in rows}):
            part = [r for r in rows if r[field] == value]
            out[f"{field} {value}"] = {k: _mean(part, k) for k in keys} | {"count": len(part)}
    return out


def evaluate(runner, items, out_dir=None, characters=False, log=None):
    """Scores of a runner (anything with probability(rgb)) on bench items.

    Whole pictures as they are and with the truth's faces as prompts (on pictures with a face);
    with `characters`, each face's figure as the page cuts it today (its box, the largest region)
    and with the face as a prompt, against that figure's visible region."""
    from app.inference.cutout import postprocess
    from app.inference.faces import detect_faces

    rows, prompted, detected, per_box, per_face = [], [], [], [], []
    seconds = 0.0
    worst = []
    for n, item in enumerate(items):
        image, truth = item["image"], item["mask"].astype(np.float32) / 255.0
        start = time.perf_counter()
        prob = runner.probability(image)
        seconds += time.perf_counter() - start
        tag = {"set": item["set"], "framing": item["meta"]["framing"], "index": item["index"]}
        rows.append(tag | cutout_metrics.scores(prob, truth))
        worst.append((rows[-1]["iou"], n, prob))
        faces = [box for _, box in item["faces"]]
        if faces:
            prompted.append(tag | cutout_metrics.scores(prompts.keep_figures(prob, faces), truth))
        # As the product gets its faces: the page's cascade on the picture (none found: no prompt).
        found = [tuple(int(v) for v in box) for box in detect_faces(image)]
        detected.append(tag | cutout_metrics.scores(prompts.keep_figures(prob, found), truth) | {"faces": len(found)})
        if characters:
            h, w = truth.shape
            for k, face in item["faces"]:
                mine = (item["instances"] == k + 1).astype(np.float32)
                one = prompts.one_figure(prob, image, face, faces)
                per_face.append(tag | {"iou": cutout_metrics.iou(one, mine)})
                bx, by, bw, bh = figure_box(face, w, h)
                boxed = np.zeros_like(prob)
                boxed[by:by + bh, bx:bx + bw] = runner.probability(image[by:by + bh, bx:bx + bw])
                kept = postprocess(boxed, largest_component=True, clean=True) / 255.0
                per_box.append(tag | {"iou": cutout_metrics.iou(kept, mine)})
        if log and (n + 1) % 10 == 0:
            log(f"  {n + 1}/{len(items)} pictures, mean IoU so far {np.mean([r['iou'] for r in rows]):.4f}")
    report = {"whole": summarise(rows), "seconds_per_picture": round(seconds / len(items), 3),
              "per_picture": rows}
    if prompted:
        plain = [r for r in rows if any(p["index"] == r["index"] and p["set"] == r["set"] for p in prompted)]
        report["faces_as_prompts"] = {"without": summarise(plain), "with": summarise(prompted)}
    report["faces_as_prompts_cascade"] = {"without": summarise(rows), "with": summarise(detected),
                                          "pictures_with_a_face_found": sum(1 for r in detected if r["faces"])}
    if characters:
        report["one_character"] = {"page box (today)": summarise(per_box, ("iou",)),
                                   "face as prompt": summarise(per_face, ("iou",))}
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "report.json", report)
        from app.training.cutout_eval import sheet
        worst = sorted(worst, key=lambda t: t[0])[:8]
        with atomic_path(out_dir / "worst.png") as tmp:
            sheet([(_small(items[n]["image"]), _small(items[n]["mask"]), _small(p)) for _, n, p in worst]).save(
                tmp, format="PNG")
    return report


def _small(array, side=448):
    """A copy at most `side` pixels on its long side (for sheets)."""
    import cv2
    h, w = array.shape[:2]
    s = min(1.0, side / max(h, w))
    return cv2.resize(array, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
