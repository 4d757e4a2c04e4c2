"""Backbone features of face crops, cached on disk so that retraining a head takes seconds.

A feature is stored under
`ROOT/<backbone name>/<weights sha256>/p<preprocessing version>/<image sha256[:2]>/<image sha256>.npy`,
so new weights or a new preprocessing never reuse stale vectors. The image key is the
sha256 of the decoded RGB pixels and size, not of the file: the same picture saved twice
hits the cache. Augmented crops are new pixels, so they get keys of their own.
"""
import hashlib
from pathlib import Path

import numpy as np
import torch

from app.build.backbones import face_batch
from app.config import CACHE_ROOT
from app.inference.imaging import flatten
from app.inference.preprocess import PREPROCESSING_VERSION
from app.storage.files import atomic_path, write_json

DEFAULT_ROOT = CACHE_ROOT / "features"
BATCH_SIZE = 16


def image_key(image):
    """sha256 of an image's RGB pixels and size (the preprocessing composes transparency first)."""
    rgb = flatten(image)
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


class FeatureCache:
    """Features of one backbone (name + weights hash) under one preprocessing version."""

    def __init__(self, backbone, root=DEFAULT_ROOT):
        self.backbone = backbone
        self.dir = (Path(root) / backbone.name / backbone.weights_sha256
                    / f"p{PREPROCESSING_VERSION}")
        self.hits = 0
        self.misses = 0

    def path(self, key):
        """Where the feature of image key `key` lives."""
        return self.dir / key[:2] / f"{key}.npy"

    def _read(self, key):
        try:
            vector = np.load(self.path(key), allow_pickle=False)
        except (OSError, ValueError):
            return None  # missing, or cut short by a crash: recompute
        return vector if vector.shape == (self.backbone.feature_dim,) else None

    def _describe(self):
        meta = self.dir / "cache.json"
        if not meta.exists():
            write_json(meta, {"backbone": self.backbone.name,
                              "weights_sha256": self.backbone.weights_sha256,
                              "preprocessing_version": PREPROCESSING_VERSION})

    def features(self, images, progress=None, batch_size=BATCH_SIZE):
        """N face crops (PIL) -> N x D float32 array, computing only what the cache lacks."""
        keys = [image_key(im) for im in images]
        out = np.zeros((len(images), self.backbone.feature_dim), np.float32)
        todo = []
        for i, key in enumerate(keys):
            vector = self._read(key)
            if vector is None:
                todo.append(i)
            else:
                out[i] = vector
        self.hits += len(images) - len(todo)
        self.misses += len(todo)
        if progress:
            progress(len(images) - len(todo))
        if todo:
            self._describe()
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            with torch.inference_mode():
                batch = face_batch([images[i] for i in chunk], self.backbone)
                vectors = self.backbone.features(batch).float().numpy()
            for i, vector in zip(chunk, vectors):
                out[i] = vector
                with atomic_path(self.path(keys[i])) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, vector)
            if progress:
                progress(len(chunk))
        return out
