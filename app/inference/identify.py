"""Classifier service: a frozen backbone plus a linear softmax head, read from a model directory.

The model directory's weights file is the head's plain `nn.Linear` state dict
(`weight`: L x D, `bias`: L); the card names the backbone, labels and unknown threshold.
"""
import torch
from torch import nn

from app.inference.backbones import load_backbone
from app.inference.preprocess import PREPROCESSING_VERSION, face_batch
from app.storage.model_dirs import ModelError, load_card, load_weights

TOP_K = 5
BATCH_SIZE = 16  # faces per forward pass; bounds memory for pictures with many faces


def make_head(feature_dim, num_labels):
    """A fresh linear head: features -> one logit per label."""
    return nn.Linear(feature_dim, num_labels)


def classifier_card(name, backbone, labels, unknown_threshold, *, version="1", training=None,
                    metrics=None, **extra):
    """A card for a classifier head over `backbone` (fills architecture, sizes and backbone hash)."""
    card = {
        "name": name,
        "kind": "classifier",
        "version": version,
        "architecture": f"{backbone.name} (frozen) + linear softmax head",
        "backbone": backbone.name,
        "backbone_sha256": backbone.weights_sha256,
        "input_size": backbone.input_size,
        "mean": list(backbone.mean),
        "std": list(backbone.std),
        "labels": list(labels),
        "unknown_threshold": float(unknown_threshold),
        "preprocessing_version": PREPROCESSING_VERSION,
        "training": training or {},
        "metrics": metrics or {},
    }
    card.update(extra)
    return card


class Identifier:
    """Names faces: backbone features -> linear head -> softmax -> top 5 and an unknown flag."""

    def __init__(self, card, backbone, head):
        self.card = card
        self.backbone = backbone
        self.head = head.eval()
        self.labels = list(card["labels"])
        self.threshold = float(card["unknown_threshold"])

    @classmethod
    def load(cls, model_dir):
        """Load a classifier model directory (sha256-checked) and the backbone its card names."""
        card = load_card(model_dir)
        if card["kind"] != "classifier":
            raise ModelError(f"{model_dir} holds a {card['kind']!r} model, not a classifier")
        if card.get("preprocessing_version", PREPROCESSING_VERSION) != PREPROCESSING_VERSION:
            raise ModelError(f"{model_dir} was trained with preprocessing version "
                             f"{card['preprocessing_version']}, this code has {PREPROCESSING_VERSION}: "
                             f"retrain it with `flask --app wsgi train classifier`")
        backbone = load_backbone(card["backbone"])
        expected = card.get("backbone_sha256")
        if expected and expected != backbone.weights_sha256:
            raise ModelError(f"{model_dir} was trained on {card['backbone']} weights with sha256 "
                             f"{expected[:16]}... but {backbone.weights_path} has "
                             f"{backbone.weights_sha256[:16]}...; retrain the head or restore those weights")
        state = load_weights(model_dir, card)
        head = make_head(backbone.feature_dim, len(card["labels"]))
        try:
            head.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ModelError(f"{model_dir}: weights do not fit a {backbone.feature_dim} -> "
                             f"{len(card['labels'])} linear head ({str(exc)[:200]})") from None
        for param in head.parameters():
            param.requires_grad_(False)
        return cls(card, backbone, head)

    @torch.inference_mode()
    def features(self, images):
        """A list of face crops -> N x D backbone features."""
        chunks = []
        for start in range(0, len(images), BATCH_SIZE):
            batch = face_batch(images[start:start + BATCH_SIZE], self.backbone)
            chunks.append(self.backbone.features(batch).float())
        return torch.cat(chunks) if chunks else torch.empty(0, self.backbone.feature_dim)

    @torch.inference_mode()
    def probabilities(self, images, features=None):
        """A list of face crops (or their features) -> N x L softmax probabilities."""
        features = self.features(images) if features is None else features
        return torch.softmax(self.head(features), dim=1)

    def identify(self, images, gallery=None):
        """Per face: up to 5 {"label", "score"} best first, and `unknown` when the best is under threshold.

        With a gallery (app/inference/gallery.py) its enrolled characters compete too, under the
        same threshold.
        """
        images = list(images)
        if gallery is not None and len(gallery):
            features = self.features(images)
            embedder = gallery.embedder
            embeddings = (embedder.from_features(features) if embedder.shares_backbone(self.backbone)
                          else embedder.from_images(images))
            return gallery.answer(self.probabilities(images, features), self.labels, self.threshold, embeddings)
        probs = self.probabilities(images)
        k = min(TOP_K, len(self.labels))
        results = []
        for row in probs:
            scores, indices = torch.topk(row, k)
            predictions = [{"label": self.labels[i], "score": float(s)}
                           for s, i in zip(scores.tolist(), indices.tolist())]
            results.append({"predictions": predictions,
                            "unknown": predictions[0]["score"] < self.threshold})
        return results
