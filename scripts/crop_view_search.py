"""Choose, on train and val only, whether the demo head should average several crop views and/or
learn from recoloured outfits (README, "Several views of one box").

    nice -n 10 .venv/bin/python scripts/crop_view_search.py data/demo-faces-kinds --out runs/crop-view-search.json

Rule (written before any candidate was scored, 2026-12-07; test is never read):
- Candidates, each trained and calibrated exactly as `train classifier ... --augment 0` does
  (same seed, head, temperature, open-set candidates and operating-point rule):
  `box` (today's recipe, retrained as the reference), `box,square,square80` (three views averaged,
  app/inference/crop_views.py), and each of those with `recolour` (one extra copy of every training
  crop whose lower 30% - where an outfit shows under a face - has its hue turned by 60-300 degrees).
- Score: the operating-point rule's own val score (the worst counted rate over crop kinds of known
  faces named right and accepted and of outsiders and boxes on no face answered unknown, at the
  candidate's operating point), ties by the mean of the counted rates.
- A candidate replaces the shipped head only if its score beats the `box` reference's by at least
  0.5 points (one drawn val face is 0.34): of those, the highest score; of equal ones the simplest
  (fewer views, then no recolouring). If none does, nothing ships.
"""
import argparse
import colorsys  # noqa: F401  (documentation: hue turned as in HSV)
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.build.backbones import load_backbone  # noqa: E402
from app.training import open_set_fit  # noqa: E402
from app.training.classifier_train import Prepared, TrainConfig, prepare_features, train_prepared  # noqa: E402
from app.training.face_dataset import UNKNOWN_LABEL, kind_of  # noqa: E402
from app.training.feature_cache import image_key  # noqa: E402

MARGIN = 0.005
OUTFIT_ROWS = 0.3  # the lower share of a face crop where clothes show


def recolour(image, rng):
    """The crop with the hue of its lower OUTFIT_ROWS turned by 60-300 degrees (faded in over a few rows)."""
    hsv = np.asarray(image.convert("HSV")).astype(np.int32)
    h = hsv.shape[0]
    start = int(h * (1 - OUTFIT_ROWS))
    shift = int(rng.uniform(60, 300) / 360 * 256)
    ramp = np.clip((np.arange(h) - start) / max(1, h * 0.05), 0, 1)[:, None]
    turned = (hsv[..., 0] + np.round(ramp * shift).astype(np.int32)) % 256
    hsv[..., 0] = turned
    out = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    out.info.update(image.info)  # keeps the crop kind face_dataset reads
    return out


def recoloured(items, seed=0):
    out = []
    for image, label in items:
        rng = np.random.default_rng([seed, int(image_key(image)[:12], 16), 101])
        out.append((recolour(image, rng), label))
    return out


def score(report):
    table = report["val"]
    counted = open_set_fit.counted_rates(table)
    return min(counted), float(np.mean(counted))


def main():
    from app.training.classifier_train import split_data
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--cache", default=None, help="feature cache folder (default .cache/features)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--only", default=None, help="comma-separated candidate names (default all)")
    args = parser.parse_args()
    train, val = split_data(Path(args.data))
    labels = sorted({lab for _, lab in train if lab != UNKNOWN_LABEL})
    backbone = load_backbone("efficientnet_lite0")
    candidates = [("box", "box", False), ("views3", "box,square,square80", False),
                  ("box+recolour", "box", True), ("views3+recolour", "box,square,square80", True)]
    if args.only:
        keep = args.only.split(",")
        candidates = [c for c in candidates if c[0] in keep]
    results = {}
    for name, views, recol in candidates:
        config = TrainConfig(augment=0, crop_views=views, cache_root=args.cache)
        extra = recoloured(train) if recol else []
        prep = prepare_features(backbone, train + extra, val, labels, config, args.cache)
        head, calibration, info = train_prepared(prep, config)
        report = info["open_set"][calibration.method]
        worst, mean = score(report)
        results[name] = {"crop_views": views, "recolour": recol, "method": calibration.method,
                         "threshold": round(calibration.threshold, 5), "val_score": round(worst, 4),
                         "val_mean_counted": round(mean, 4), "val": report["val"],
                         "per_label_false_unknown": per_label(head, calibration, prep),
                         "best_epoch": info["best_epoch"]}
        print(json.dumps({name: {k: v for k, v in results[name].items() if k != "val"}}), flush=True)
        for kind, row in report["val"].items():
            print(f"  {kind}: named+accepted {row['known_named_and_accepted']}, "
                  f"rejected {row['unknown_rejected']} ({row['known']} / {row['unknown']})", flush=True)
    ref = results.get("box")
    chosen = None
    if ref:
        order = {"box": 0, "box+recolour": 1, "views3": 2, "views3+recolour": 3}
        passing = [n for n, r in results.items() if n != "box" and r["val_score"] >= ref["val_score"] + MARGIN]
        if passing:
            chosen = max(passing, key=lambda n: (results[n]["val_score"], results[n]["val_mean_counted"], -order[n]))
    summary = {"rule": __doc__.split("\n\n", 2)[2].strip(), "candidates": results, "chosen": chosen}
    print("chosen:", chosen)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")


def per_label(head, calibration, prep: Prepared):
    """Share of each label's val faces named right but answered unknown, or named wrong."""
    from app.training.classifier_train import head_logits
    best, pred = open_set_fit.best_answers(calibration, head_logits(head, prep.x_val), prep.x_val)
    out = {}
    for i, lab in enumerate(prep.labels):
        mine = prep.y_val == i
        if mine.any():
            out[lab] = round(float(((pred != i) | (best < calibration.threshold))[mine].mean()), 4)
    return out


if __name__ == "__main__":
    main()
