"""Calibrate the gallery's P(name right | similarity) on val crops of every kind, so that enrolled
characters and the head's labels are on one scale (app/inference/open_set.py).

    .venv/bin/python scripts/gallery_calibration.py DATA [--card models/demo-embedding/card.json]

Rule (fixed before any figure was computed):
- DATA is a `dataset demo-faces --crops cascade,drawn,known` folder; only its train and val splits
  are read, never test. Features come from the feature cache the head's training filled.
- An episode enrols 8 train crops (any kind) of each of 2 characters drawn from the 9 cast
  labels; every val crop is a query: the enrolled two's faces should be named (right when the
  nearest enrolled character is theirs), every other crop (the other seven, outsiders Kim and Lem,
  boxes on no face) should not. 300 episodes, seed 0.
- The logistic fit of "named right" on the best similarity gives slope and similarity threshold
  (where P = 0.5); the card keeps the earlier Live2D calibration beside it.
- Amended before any few-shot test figure, once the first fit was seen (slope 7.9, threshold
  0.864, shrunk by a ridge penalty meant for the head's two-feature fit: only 32% of the enrolled
  characters' val faces reached P = 0.5; without it, slope 36.4, threshold 0.753, 83%): in these
  episodes only 15% of queries are an enrolled character's, where the head's decision was fitted
  on a val split that is 69% cast faces. So that a gallery P and a head P mean the same under the
  same mix, the fit (no penalty) weighs the named-right queries up to the val split's share of
  cast faces.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.build.backbones import load_backbone  # noqa: E402
from app.inference.gallery import normalise  # noqa: E402
from app.training.face_dataset import (  # noqa: E402
    UNKNOWN_LABEL,  # noqa: E402
    kind_of,
    load_folder,
)
from app.training.feature_cache import FeatureCache  # noqa: E402
from app.training.open_set_fit import fit_logistic  # noqa: E402

EPISODES, ENROLLED, FACES = 300, 2, 8


def features(folder, cache):
    """(unit features, labels, kinds) of every crop under folder/<label>/."""
    items = load_folder(folder)
    x = normalise(cache.features([im for im, _ in items]))
    return x, np.array([lab for _, lab in items]), [kind_of(im) for im, _ in items]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--card", default=str(ROOT / "models" / "demo-embedding" / "card.json"))
    args = parser.parse_args()
    data = Path(args.data)
    card = json.loads(Path(args.card).read_text())
    if card.get("weights"):
        raise SystemExit("this calibrates raw-feature embeddings; a projection's card needs its own run")
    cache = FeatureCache(load_backbone(card["backbone"]))  # the embedding's own backbone (any in the registry)
    x_train, y_train, _ = features(data / "train", cache)
    x_val, y_val, kinds = features(data / "val", cache)
    cast = sorted(set(y_train) - {UNKNOWN_LABEL})
    rng = np.random.default_rng(0)
    sims, right = [], []
    for _ in range(EPISODES):
        chosen = rng.choice(cast, ENROLLED, replace=False)
        gallery = [rng.choice(np.flatnonzero(y_train == c), FACES, replace=False) for c in chosen]
        per_char = np.stack([(x_val @ x_train[idx].T).max(axis=1) for idx in gallery], axis=1)
        best = per_char.argmax(axis=1)
        sims.append(per_char.max(axis=1))
        right.append(chosen[best] == y_val)
    sims, right = np.concatenate(sims), np.concatenate(right)
    cast_share = float(np.mean(y_val != UNKNOWN_LABEL))  # the mix the head's decision was fitted on
    weights = np.where(right, cast_share / right.mean(), (1 - cast_share) / (1 - right.mean()))
    w, b = fit_logistic(sims[:, None], right.astype(np.float64), l2=0.0, weights=weights)  # one feature: no shrinkage
    slope, threshold = float(w), float(-b / w)
    prob = 1 / (1 + np.exp(-(slope * (sims - threshold))))
    card.setdefault("calibration_live2d_known_boxes", card["calibration"])
    card["calibration"] = {
        "similarity_threshold": round(threshold, 4), "slope": round(slope, 3),
        "rule": __doc__.split("\n\n", 2)[2].strip(),
        "data": str(data), "queries": int(len(sims)), "named_right_share": round(float(right.mean()), 4),
        "weighted_to_cast_share": round(cast_share, 4),
        "val_at_p_half": {"named_right_accepted": round(float((prob >= 0.5)[right].mean()), 4),
                          "others_turned_away": round(float((prob < 0.5)[~right].mean()), 4)},
        "val_kinds": sorted(set(kinds))}
    Path(args.card).write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(card["calibration"], indent=1))


if __name__ == "__main__":
    main()
