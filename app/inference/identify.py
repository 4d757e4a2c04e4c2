"""Classifier service: a frozen backbone plus a linear softmax head, read from a model directory.

Serving runs the backbone through ONNX Runtime (its verified export, app/inference/backbone_onnx.py)
and the head in numpy, without torch. Training uses the torch backbone.

The model directory's weights file (`weights.npz`) holds the linear head (`weight`: L x D, `bias`:
L), with `references` (R x D) and `reference_labels` (R) when its open-set decision compares with
training faces; the card names the backbone, labels and the decision (`open_set`,
app/inference/open_set.py; older cards: softmax at `unknown_threshold`).
"""
import numpy as np

from app.inference import crop_views
from app.inference.backbone_onnx import load_onnx_backbone, weights_file
from app.inference.open_set import HeadCalibration, rank
from app.inference.preprocess import PREPROCESSING_VERSION
from app.storage.model_dirs import ModelError, load_arrays, load_card, new_card

TOP_K = 5
BATCH_SIZE = 16  # faces per forward pass; bounds memory for pictures with many faces


def classifier_card(name, backbone, labels, unknown_threshold, *, version="1", training=None,
                    metrics=None, **extra):
    """A card for a classifier head over `backbone` (fills architecture, sizes and backbone hash)."""
    return new_card("classifier", name, version=version,
                    architecture=f"{backbone.name} (frozen) + linear softmax head",
                    backbone=backbone.name, backbone_sha256=backbone.weights_sha256,
                    input_size=backbone.input_size, mean=list(backbone.mean), std=list(backbone.std),
                    labels=list(labels), unknown_threshold=float(unknown_threshold),
                    preprocessing_version=PREPROCESSING_VERSION, training=training, metrics=metrics, **extra)


class Identifier:
    """Names faces: backbone features (ONNX Runtime) -> linear head (numpy) -> softmax -> top 5
    and an unknown flag."""

    def __init__(self, card, backbone, weight, bias, calibration=None):
        self.card = card
        self.backbone = backbone  # app.inference.backbone_onnx.OnnxBackbone
        self.weight = np.ascontiguousarray(weight, np.float32)  # L x D
        self.bias = np.ascontiguousarray(bias, np.float32)  # L
        self.labels = list(card["labels"])
        self.calibration = calibration or HeadCalibration.from_card(card)
        self.threshold = self.calibration.threshold
        self.views = crop_views.views_of(card)  # the crop views the head was trained and calibrated on

    @classmethod
    def load(cls, model_dir, onnx_dir=None, threads=1):
        """Load a classifier model directory (sha256-checked) and the ONNX export of its backbone
        (a missing or stale export is a ModelError naming the command that builds it)."""
        card = load_card(model_dir)
        if card["kind"] != "classifier":
            raise ModelError(f"{model_dir} holds a {card['kind']!r} model, not a classifier")
        try:
            crop_views.views_of(card)
        except ValueError as exc:
            raise ModelError(f"{model_dir}: {exc}") from None
        if card.get("preprocessing_version", PREPROCESSING_VERSION) != PREPROCESSING_VERSION:
            raise ModelError(f"{model_dir} was trained with preprocessing version "
                             f"{card['preprocessing_version']}, this code has {PREPROCESSING_VERSION}: "
                             f"retrain it with `flask --app wsgi train classifier`")
        weights_path, digest = weights_file(card["backbone"])
        expected = card.get("backbone_sha256")
        if expected and expected != digest:
            raise ModelError(f"{model_dir} was trained on {card['backbone']} weights with sha256 "
                             f"{expected[:16]}... but {weights_path} has "
                             f"{digest[:16]}...; retrain the head or restore those weights")
        backbone = load_onnx_backbone(card["backbone"], onnx_dir, threads)
        state = load_arrays(model_dir, card)
        labels, dim = len(card["labels"]), backbone.feature_dim
        try:
            weight, bias = np.asarray(state["weight"], np.float32), np.asarray(state["bias"], np.float32)
            refs = {k: state[k] for k in ("references", "reference_labels") if k in state}
            fits = (set(state) - set(refs) == {"weight", "bias"} and weight.shape == (labels, dim)
                    and bias.shape == (labels,) and len(refs) in (0, 2)
                    and (not refs or refs["references"].shape[1:] == (dim,)))
        except (KeyError, TypeError, AttributeError):
            fits = False
        if not fits:
            raise ModelError(f"{model_dir}: weights do not fit a {dim} -> {labels} linear head "
                             f"(expected weight {labels}x{dim} and bias {labels})")
        return cls(card, backbone, weight, bias, HeadCalibration.from_card(card, refs))

    def features(self, images):
        """A list of face crops -> N x D backbone features of the crops as they are (float32 array)."""
        chunks = [self.backbone.face_features(images[start:start + BATCH_SIZE])
                  for start in range(0, len(images), BATCH_SIZE)]
        return np.concatenate(chunks) if chunks else np.empty((0, self.backbone.feature_dim), np.float32)

    def logits(self, features):
        """N x D features -> N x L head logits (float64)."""
        return np.asarray(features, np.float64) @ self.weight.T.astype(np.float64) + self.bias

    def head_features(self, images, box_features=None):
        """A list of face crops -> N x D features the head reads: the mean over the card's crop views
        (app/inference/crop_views.py); `box_features`, the crops' own, are reused when given."""
        return crop_views.averaged_features(images, self.views, self.features, box_features)

    def probabilities(self, images, features=None):
        """A list of face crops -> N x L calibrated probability of each head label (each on its own:
        app/inference/open_set.py puts a face's candidates on one scale); `features`: head_features."""
        features = self.head_features(list(images)) if features is None else features
        return self.calibration.label_probabilities(self.logits(features), features)

    def identify(self, images, gallery=None):
        """Per face: up to 5 {"label", "score", "source"} best first on one scale, and `unknown` when
        the best is under the operating point.

        With a gallery (app/inference/gallery.py) its enrolled characters compete too, on the same
        scale under the same threshold; names equal but for case and width are one character.
        """
        images = list(images)
        features = self.features(images)  # the crops as sent: the gallery's scale was fitted on these
        probs = self.probabilities(images, self.head_features(images, features))
        gallery_q = [{}] * len(images)
        if gallery is not None and len(gallery):
            embedder = gallery.embedder
            embeddings = (embedder.from_features(features) if embedder.shares_backbone(self.backbone)
                          else embedder.from_images(images))
            gallery_q = gallery.probabilities(embeddings)
        results = []
        for row, enrolled in zip(probs, gallery_q):
            candidates = [(label, q, "head") for label, q in zip(self.labels, row.tolist())]
            candidates += [(name, q, "gallery") for name, q in enrolled.items()]
            results.append(rank(candidates, self.threshold, TOP_K))
        return results
