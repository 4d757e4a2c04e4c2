"""One scale for every name a face may get, and one "unknown" decision (README, issue 27).

Each candidate name gets q, a calibrated probability that it is the right one:
- a head label: sigmoid(a * logodds(softmax(logits / T)) + b * nearest + c), where `nearest` is the
  cosine similarity to the nearest of that label's reference embeddings (centres of its training
  faces, kept in the head's weights); with b = 0 and a = 1, c = 0 it is the temperature-scaled
  softmax itself. T, a, b, c and the operating point come from the card's `open_set`.
- an enrolled character: the gallery's calibrated P(right | similarity) (app/inference/gallery.py).
The candidates are then put on one scale by their odds o = q / (1 - q):
    P(name) = o / (1 + sum of every candidate's o)
so one face's scores never add up past 1; 1 - sum is the share left to "none of these".
The face is "unknown" when its best P is under the operating point.
"""
import numpy as np

from app.storage.labels import name_key

EPS = 1e-6


def softmax(logits, temperature=1.0):
    """Row-wise softmax of logits / temperature (float64)."""
    z = np.asarray(logits, np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def logodds(p):
    """log(p / (1 - p)), clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(z):
    """1 / (1 + exp(-z)), float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def unit(x):
    """Rows scaled to unit length (float64)."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_similarity(features, references, reference_labels, num_labels):
    """N x L cosine similarity of each face to the nearest reference of each label (-1 where none)."""
    sims = unit(features) @ unit(references).T if len(references) else np.zeros((len(features), 0))
    out = np.full((len(features), num_labels), -1.0)
    for label in range(num_labels):
        mine = reference_labels == label
        if mine.any():
            out[:, label] = sims[:, mine].max(axis=1)
    return out


class HeadCalibration:
    """The head's side of the decision: temperature, logistic on (log-odds, nearest similarity), threshold."""

    def __init__(self, temperature=1.0, a=1.0, b=0.0, c=0.0, threshold=0.5, references=None,
                 reference_labels=None, method="temperature"):
        self.temperature, self.a, self.b, self.c = float(temperature), float(a), float(b), float(c)
        self.threshold = float(threshold)
        self.method = method
        self.references = np.zeros((0, 1)) if references is None else np.asarray(references, np.float64)
        self.reference_labels = (np.zeros(0, np.int64) if reference_labels is None
                                 else np.asarray(reference_labels, np.int64))

    @classmethod
    def from_card(cls, card, state=None):
        """From a card's `open_set` (and the weights' references); an older card: softmax at its threshold."""
        spec = card.get("open_set")
        if not spec:
            return cls(threshold=card["unknown_threshold"], method="softmax")
        state = state or {}
        refs, ref_labels = state.get("references"), state.get("reference_labels")
        return cls(spec["temperature"], spec["a"], spec["b"], spec["c"], spec["threshold"],
                   None if refs is None else np.asarray(refs, np.float64),
                   None if ref_labels is None else np.asarray(ref_labels, np.int64), spec["method"])

    def to_card(self):
        """The card's `open_set` entry (references travel in the weights file)."""
        return {"method": self.method, "temperature": round(self.temperature, 5), "a": round(self.a, 5),
                "b": round(self.b, 5), "c": round(self.c, 5), "threshold": round(self.threshold, 5)}

    def label_probabilities(self, logits, features=None):
        """N x L calibrated q per head label (not yet on the shared scale)."""
        p = softmax(logits, self.temperature)
        if self.method in ("softmax", "temperature"):
            return p
        nearest = nearest_similarity(features, self.references, self.reference_labels, p.shape[1])
        return sigmoid(self.a * logodds(p) + self.b * nearest + self.c)


def shared_scale(q):
    """Candidates' q (each P(right) on its own; last axis) -> P on one scale: o / (1 + sum o), o = q / (1 - q)."""
    q = np.clip(np.asarray(q, np.float64), 0.0, 1 - EPS)
    odds = q / (1 - q)
    return odds / (1.0 + odds.sum(axis=-1, keepdims=True))


def rank(candidates, threshold, top_k=5):
    """candidates: [(name, q, source)] of one face -> its answer: top-k {label, score, source} and `unknown`.

    Names equal under name_key are one character: the first spelling given is shown, the higher q kept.
    """
    merged = {}
    for name, q, source in candidates:
        key = name_key(name)
        if key not in merged or q > merged[key][1]:
            merged[key] = (merged.get(key, (name,))[0], q, source)
    names = list(merged.values())
    scores = shared_scale([q for _, q, _ in names])
    order = np.argsort(-scores, kind="stable")[:top_k]
    predictions = [{"label": names[i][0], "score": float(scores[i]), "source": names[i][2]} for i in order]
    return {"predictions": predictions, "unknown": not predictions or predictions[0]["score"] < threshold}
