"""Few-shot characters: embeddings of enrolled faces, and one decision that combines them with the head.

An Embedder turns backbone features into unit vectors (the raw features, or a small trained
projection when its card names one). A Gallery holds the embeddings of every enrolled face; a
face is scored against each character by cosine similarity to that character's nearest
enrolled face. The similarity is mapped onto the head's probability scale so that ONE
threshold, the head's calibrated `unknown_threshold`, decides "unknown" for both:

    gallery score = sigmoid(logit(head threshold) + slope * (similarity - similarity threshold))

which equals the head's threshold exactly at the gallery's calibrated similarity threshold
(from the embedding card: held-out poses of enrolled characters against characters never
enrolled). A label the head and the gallery both know takes the higher of its two scores.
"""
import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from app.inference.backbones import load_backbone
from app.inference.preprocess import PREPROCESSING_VERSION, face_batch
from app.storage.model_dirs import CARD_NAME, ModelError, verify_weights

TOP_K = 5
BATCH_SIZE = 16


def make_projection(feature_dim, dim, hidden=None):
    """The metric-learning projection: features -> (hidden ->) dim; outputs are L2-normalised by the caller."""
    if hidden:
        return nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
    return nn.Sequential(nn.Linear(feature_dim, dim))


def normalise(x):
    """Rows scaled to unit length (float32 numpy)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Embedder:
    """Backbone features -> unit embeddings, with the similarity calibration from its card."""

    def __init__(self, card, backbone, projection=None):
        self.card = card
        self.backbone = backbone
        self.projection = projection.eval() if projection is not None else None
        calibration = card.get("calibration") or {}
        self.similarity_threshold = float(calibration.get("similarity_threshold", 0.8))
        self.slope = float(calibration.get("slope", 20.0))
        # The key under which embeddings are stored: a new backbone, projection or
        # preprocessing never reuses old vectors.
        self.key = ":".join([backbone.name, backbone.weights_sha256[:16], f"p{PREPROCESSING_VERSION}",
                             (card.get("sha256") or "raw")[:16]])

    @classmethod
    def load(cls, model_dir):
        """An embedding model directory: card.json (kind "embedding") and, for a projection, its weights."""
        path = Path(model_dir) / CARD_NAME
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path} cannot be read ({exc}); restore it from git") from None
        if not isinstance(card, dict) or card.get("kind") != "embedding" or "backbone" not in card:
            raise ModelError(f"{path} is not an embedding card (kind 'embedding' with a backbone)")
        backbone = load_backbone(card["backbone"])
        expected = card.get("backbone_sha256")
        if expected and expected != backbone.weights_sha256:
            raise ModelError(f"{model_dir} was calibrated on other {card['backbone']} weights")
        projection = None
        if card.get("weights"):
            state = torch.load(verify_weights(model_dir, card), map_location="cpu", weights_only=True)
            spec = card.get("projection") or {}
            projection = make_projection(backbone.feature_dim, int(spec.get("dim", 128)), spec.get("hidden"))
            try:
                projection.load_state_dict(state, strict=True)
            except (RuntimeError, TypeError) as exc:
                raise ModelError(f"{model_dir}: weights do not fit its projection ({str(exc)[:200]})") from None
            for param in projection.parameters():
                param.requires_grad_(False)
        return cls(card, backbone, projection)

    def shares_backbone(self, backbone):
        """True when features of `backbone` are exactly this embedder's input."""
        return backbone.name == self.backbone.name and backbone.weights_sha256 == self.backbone.weights_sha256

    @torch.inference_mode()
    def from_features(self, features):
        """N x D backbone features (tensor or array) -> N x d unit vectors (numpy float32)."""
        # The projection was trained on unit-length features: scale first, project, scale again.
        x = torch.from_numpy(normalise(np.asarray(features, np.float32)))
        if self.projection is not None and len(x):
            x = self.projection(x)
        return normalise(x.numpy())

    @torch.inference_mode()
    def from_images(self, images):
        """Face crops (PIL) -> N x d unit vectors."""
        chunks = []
        for start in range(0, len(images), BATCH_SIZE):
            batch = face_batch(images[start:start + BATCH_SIZE], self.backbone)
            chunks.append(self.backbone.features(batch).float())
        features = torch.cat(chunks) if chunks else torch.empty(0, self.backbone.feature_dim)
        return self.from_features(features)


class Gallery:
    """The embeddings of every enrolled face, grouped by character name."""

    def __init__(self, embedder, names, vectors):
        self.embedder = embedder
        self.names = sorted(set(names))
        index = {n: i for i, n in enumerate(self.names)}
        self.owner = np.array([index[n] for n in names], np.int64)
        self.vectors = normalise(vectors) if len(names) else np.zeros((0, 1), np.float32)
        self.counts = {n: int((self.owner == i).sum()) for i, n in enumerate(self.names)}

    def __len__(self):
        return len(self.names)

    def similarities(self, embeddings):
        """M x d unit embeddings -> M x C cosine similarity to each character's nearest enrolled face."""
        sims = np.asarray(embeddings, np.float32) @ self.vectors.T  # M x faces
        out = np.full((len(sims), len(self.names)), -1.0, np.float32)
        for c in range(len(self.names)):
            out[:, c] = sims[:, self.owner == c].max(axis=1)
        return out

    def scores(self, similarities, head_threshold):
        """Similarities mapped onto the head's probability scale (equal to head_threshold at the calibrated point)."""
        t = min(max(float(head_threshold), 1e-4), 1 - 1e-4)
        z = math.log(t / (1 - t)) + self.embedder.slope * (similarities - self.embedder.similarity_threshold)
        return 1.0 / (1.0 + np.exp(-z))

    def answer(self, head_probs, head_labels, head_threshold, embeddings):
        """Per face: up to 5 {"label", "score", "source"} best first, and one `unknown` decision."""
        gallery_scores = self.scores(self.similarities(embeddings), head_threshold)
        results = []
        for row, grow in zip(np.asarray(head_probs, np.float32), gallery_scores):
            best = {}
            for label, score in zip(head_labels, row.tolist()):
                best[label] = (score, "head")
            for label, score in zip(self.names, grow.tolist()):
                if label not in best or score > best[label][0]:
                    best[label] = (score, "gallery")
            ranked = sorted(best.items(), key=lambda kv: -kv[1][0])[:TOP_K]
            predictions = [{"label": label, "score": float(score), "source": source}
                           for label, (score, source) in ranked]
            results.append({"predictions": predictions, "unknown": predictions[0]["score"] < head_threshold})
        return results
