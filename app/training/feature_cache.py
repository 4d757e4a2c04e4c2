"""Backbone features of face crops, cached on disk so that retraining a head takes seconds.

A feature is stored under
`ROOT/<backbone name>/<weights sha256>/p<preprocessing version>/<image sha256[:2]>/<image sha256>.npy`,
so new weights or a new preprocessing never reuse stale vectors. The image key is the
sha256 of the decoded RGB pixels and size, not of the file: the same picture saved twice
hits the cache. Augmented crops are new pixels, so they get keys of their own.
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from app.preprocess import PREPROCESSING_VERSION, face_batch, to_rgb

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / ".cache" / "features"
BATCH_SIZE = 16


def image_key(image):
    """sha256 of an image's RGB pixels and size (the preprocessing composes transparency first)."""
    rgb = to_rgb(image)
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def _write_atomic(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
            self.dir.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"backbone": self.backbone.name,
                               "weights_sha256": self.backbone.weights_sha256,
                               "preprocessing_version": PREPROCESSING_VERSION}, indent=1)
            fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, meta)

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
                _write_atomic(self.path(keys[i]), vector)
            if progress:
                progress(len(chunk))
        return out


def uncached_features(backbone, images, batch_size=BATCH_SIZE):
    """Features without touching the disk (for one-off augmented crops)."""
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunks.append(backbone.features(face_batch(images[start:start + batch_size], backbone)).numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, backbone.feature_dim), np.float32)
