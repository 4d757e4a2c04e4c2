"""Few-shot characters: embeddings of enrolled faces, and one decision that combines them with the head.

An Embedder turns backbone features into unit vectors (the raw features, or a small trained
projection when its card names one). A Gallery holds the embeddings of every enrolled face; a
face is scored against each character by cosine similarity to that character's nearest
enrolled face, turned into the probability that the name is right,

    q = sigmoid(slope * (similarity - similarity threshold))

(the embedding card's logistic fit on held-out poses of enrolled characters against characters
never enrolled). app/inference/open_set.py puts these and the head's calibrated probabilities on
one scale and makes one "unknown" decision for both.
"""
import numpy as np

from app.inference.backbone_onnx import load_onnx_backbone
from app.inference.preprocess import PREPROCESSING_VERSION
from app.storage.model_dirs import ModelError, load_arrays, load_card

BATCH_SIZE = 16


def normalise(x):
    """Rows scaled to unit length (float32 numpy)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _numpy_layers(state, feature_dim, dim, hidden):
    """The projection's state dict -> [(W, b), ...] (ReLU between), checked against its spec."""
    names = ["0", "2"] if hidden else ["0"]
    shapes = [(hidden, feature_dim), (dim, hidden)] if hidden else [(dim, feature_dim)]
    if set(state) != {f"{n}.{p}" for n in names for p in ("weight", "bias")}:
        raise ModelError(f"projection weights hold {sorted(state)}, expected layers {names}")
    layers = []
    for name, shape in zip(names, shapes):
        weight = np.asarray(state[f"{name}.weight"], np.float32)
        bias = np.asarray(state[f"{name}.bias"], np.float32)
        if weight.shape != shape or bias.shape != (shape[0],):
            raise ModelError(f"projection layer {name} is {weight.shape}, expected {shape}")
        layers.append((np.ascontiguousarray(weight), np.ascontiguousarray(bias)))
    return layers


class Embedder:
    """Backbone features (ONNX Runtime) -> unit embeddings, with the similarity calibration from its card."""

    def __init__(self, card, backbone, layers=None):
        self.card = card
        self.backbone = backbone  # app.inference.backbone_onnx.OnnxBackbone
        self.layers = layers or []
        calibration = card.get("calibration") or {}
        self.similarity_threshold = float(calibration.get("similarity_threshold", 0.8))
        self.slope = float(calibration.get("slope", 20.0))
        # The key under which embeddings are stored: a new backbone, projection or
        # preprocessing never reuses old vectors.
        self.key = ":".join([backbone.name, backbone.weights_sha256[:16], f"p{PREPROCESSING_VERSION}",
                             (card.get("sha256") or "raw")[:16]])

    @classmethod
    def load(cls, model_dir, onnx_dir=None, threads=1):
        """An embedding model directory: card.json (kind "embedding") and, for a projection, its
        weights (`.npz`); the backbone through its ONNX export, as for Identifier."""
        card = load_card(model_dir)
        if card["kind"] != "embedding":
            raise ModelError(f"{model_dir} holds a {card['kind']!r} model, not an embedding")
        backbone = load_onnx_backbone(card["backbone"], onnx_dir, threads)
        expected = card.get("backbone_sha256")
        if expected and expected != backbone.weights_sha256:
            raise ModelError(f"{model_dir} was calibrated on other {card['backbone']} weights")
        layers = None
        if card.get("weights"):
            spec = card.get("projection") or {}
            layers = _numpy_layers(load_arrays(model_dir, card), backbone.feature_dim,
                                   int(spec.get("dim", 128)), spec.get("hidden"))
        return cls(card, backbone, layers)

    def shares_backbone(self, backbone):
        """True when features of `backbone` are exactly this embedder's input."""
        return backbone.name == self.backbone.name and backbone.weights_sha256 == self.backbone.weights_sha256

    def from_features(self, features):
        """N x D backbone features -> N x d unit vectors (numpy float32)."""
        # The projection was trained on unit-length features: scale first, project, scale again.
        x = normalise(features)
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight.T + bias
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return normalise(x)

    def from_images(self, images):
        """Face crops (PIL) -> N x d unit vectors."""
        chunks = [self.backbone.face_features(images[start:start + BATCH_SIZE])
                  for start in range(0, len(images), BATCH_SIZE)]
        features = np.concatenate(chunks) if chunks else np.empty((0, self.backbone.feature_dim), np.float32)
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

    def probabilities(self, embeddings):
        """M x d unit embeddings -> per face {character: P(right | nearest similarity)}."""
        z = self.embedder.slope * (self.similarities(embeddings) - self.embedder.similarity_threshold)
        q = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
        return [dict(zip(self.names, row.tolist())) for row in q]
