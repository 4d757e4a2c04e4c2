"""Retraining the head on the gallery plus the existing data, and the gate before it goes live.

The held-out rule: the existing data set's test split (DATA/test) is the yardstick. Neither
head trains or calibrates on it. The candidate replaces the live head only if, on those faces,
its top-1, its share of known faces wrongly called unknown and its share of outsiders rightly
called unknown are each no worse than the live head's, within `tolerance` (default 0.01: one
face in a hundred, the noise of a retrain on the same data).

Gallery faces are split per character by their picture's hash: every fourth face of a
character with at least three goes to validation (early stopping and the unknown
threshold), the rest to training.
"""
import io
from dataclasses import dataclass

from PIL import Image

DEFAULT_TOLERANCE = 0.01
# (metric, True when higher is better)
GATED = (("top1", True), ("false_unknown_rate", False), ("unknown_rejection_rate", True))


def load_picture(data):
    """PNG bytes -> RGB PIL image (loaded, file closed)."""
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def gallery_split(faces):
    """[(label, sha256, PIL image)] -> {"train": [(image, label)], "val": [...]}, split by hash."""
    by_label = {}
    for label, sha256, image in faces:
        by_label.setdefault(label, []).append((sha256, image))
    split = {"train": [], "val": []}
    for label, items in sorted(by_label.items()):
        items.sort(key=lambda item: item[0])
        for i, (_, image) in enumerate(items):
            to_val = len(items) >= 3 and i % 4 == 3
            split["val" if to_val else "train"].append((image, label))
    return split


@dataclass
class Verdict:
    accepted: bool
    reason: str
    live: dict
    candidate: dict

    def as_dict(self):
        """JSON form, stored with the model version."""
        return {"accepted": self.accepted, "reason": self.reason, "live": self.live, "candidate": self.candidate}


def _figures(metrics):
    return {k: metrics.get(k) for k in ("top1", "top5", "false_unknown_rate", "unknown_rejection_rate",
                                        "cast_faces", "outside_faces")}


def compare(live_metrics, candidate_metrics, tolerance=DEFAULT_TOLERANCE):
    """The gate: accepted only when no gated figure is worse than the live one's by more than tolerance."""
    live, cand = _figures(live_metrics), _figures(candidate_metrics)
    worse = []
    for key, higher_better in GATED:
        a, b = live.get(key), cand.get(key)
        if a is None or b is None:
            continue
        if (b < a - tolerance) if higher_better else (b > a + tolerance):
            worse.append(f"{key} {b:.4f} vs live {a:.4f}")
    if worse:
        return Verdict(False, "Refused: worse than the live model on held-out faces: " + "; ".join(worse)
                       + f" (tolerance {tolerance}). The live model stays.", live, cand)
    return Verdict(True, "Accepted: no held-out figure is worse than the live model's "
                   f"(top-1 {cand['top1']:.4f} vs {live['top1']:.4f}).", live, cand)
