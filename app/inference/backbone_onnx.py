"""Frozen backbones served by ONNX Runtime: the verified export's checks and its session.

Exports are made by app/build/backbone_export.py:

    python -m app.build.backbone_export [BACKBONE ...] [--force]

Exports live in ONNX_DIR (default .cache/onnx/, git-ignored) as `<backbone>-<sha16>.onnx` beside
a record `<backbone>-<sha16>.json`, where sha16 starts the sha256 of the weights file they were
made from. The record holds the full weights sha256, the export's own sha256 and EXPORT_VERSION:
serving uses an export only when all three match, and otherwise refuses with the command that
rebuilds it (scripts/setup.sh runs it; training and evaluation commands build it themselves).
Serving never exports: that needs torch and takes seconds to minutes.

An export is the backbone's `forward_features` (N x 3 x S x S normalised -> N x D), batch
dimension free, fp32. It is kept only if ONNX Runtime and torch agree on the verification
faces: max abs difference of the features at most MAX_ABS_DIFF, and the same ImageNet top-1
(the backbone's own classifier on both feature sets) for every face.
"""
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app import nets
from app.config import DEFAULTS, resolve_path
from app.inference.onnx_runner import session
from app.inference.preprocess import face_arrays
from app.storage.files import sha256_file
from app.storage.model_dirs import ModelError

DEFAULT_DIR = resolve_path(DEFAULTS["ONNX_DIR"])
# Bump when the network code or the export recipe changes: older exports then count as stale.
EXPORT_VERSION = 1
OPSET = 17
MAX_ABS_DIFF = 1e-3  # fp32 against fp32: rounding differences are around 1e-5
INPUT, OUTPUT = "input", "features"


def default_dir():
    """Where exports live: the running app's ONNX_DIR, else FLASK_ONNX_DIR, else .cache/onnx."""
    try:
        from flask import current_app
        return resolve_path(current_app.config["ONNX_DIR"])
    except (RuntimeError, KeyError):  # no app (setup, scripts) or an app without the setting
        return resolve_path(os.environ.get("FLASK_ONNX_DIR") or DEFAULTS["ONNX_DIR"])


def rebuild_command(name):
    return f"python -m app.build.backbone_export {name}"


def export_paths(onnx_dir, name, weights_sha256):
    """(ONNX file, record) paths of backbone `name` exported from weights with this sha256."""
    stem = f"{name}-{weights_sha256[:16]}"
    onnx_dir = Path(onnx_dir)
    return onnx_dir / f"{stem}.onnx", onnx_dir / f"{stem}.json"


_digests = {}


def weights_file(name, weights_path=None):
    """(path, sha256) of the weights backbone `name` loads; ModelError if they are not installed."""
    spec = nets.backbone(name)
    path = Path(weights_path) if weights_path else spec.default_weights()
    if not path.is_file():
        raise ModelError(f"{name} weights not found at {path}; run `{spec.fetch_hint}`")
    # Hashing Inception's 100 MB takes a while: remember it while the file stays the same.
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return path, _digests[key]


def check_export(onnx_dir, name, weights_sha256):
    """(ONNX path, record) of a usable export; ModelError saying why not and how to rebuild."""
    path, record_path = export_paths(onnx_dir, name, weights_sha256)
    rebuild = f"build it with `{rebuild_command(name)}` (scripts/setup.sh does)"
    if not record_path.is_file():
        others = sorted(p.name for p in Path(onnx_dir).glob(f"{name}-*.json")) if Path(onnx_dir).is_dir() else []
        also = f" (only exports of other weights are there: {', '.join(others)})" if others else ""
        raise ModelError(f"no ONNX export of {name} for its weights (sha256 {weights_sha256[:16]}...) "
                         f"in {onnx_dir}{also}; {rebuild}")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        fields = (record["weights_sha256"], record["sha256"], record["export_version"],
                  int(record["input_size"]), int(record["feature_dim"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{record_path} is unreadable ({exc!r}); {rebuild}") from None
    weights_sha, onnx_sha, version = fields[:3]
    if weights_sha != weights_sha256:
        raise ModelError(f"{record_path} was made from other weights (sha256 {str(weights_sha)[:16]}...): "
                         f"stale; {rebuild}")
    if version != EXPORT_VERSION:
        raise ModelError(f"{record_path} was made by export version {version}, this code is version "
                         f"{EXPORT_VERSION}: stale; {rebuild}")
    if not path.is_file() or sha256_file(path) != onnx_sha:
        raise ModelError(f"{path} is missing or does not match its record (damaged?); {rebuild}")
    return path, record


@dataclass
class OnnxBackbone:
    """A backbone in an ONNX Runtime session, with the preprocessing constants of its weights."""

    name: str
    input_size: int
    mean: tuple
    std: tuple
    feature_dim: int
    weights_sha256: str
    session: object
    path: Path

    def features(self, batch):
        """N x 3 x S x S float32 array (normalised) -> N x feature_dim float32 array."""
        if batch.shape[0] == 0:
            return np.empty((0, self.feature_dim), np.float32)
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch, np.float32)})[0]

    def face_features(self, images):
        """Face crops (PIL) -> N x feature_dim features, preprocessed as the weights expect."""
        return self.features(face_arrays(images, self.input_size, self.mean, self.std))


_sessions = {}
_sessions_pid = os.getpid()
_sessions_lock = threading.Lock()


def load_onnx_backbone(name, onnx_dir=None, threads=1, weights_path=None):
    """The ONNX Runtime backbone `name`, one per (export, threads) in this process; a missing or
    stale export is a ModelError naming the command that builds it."""
    onnx_dir = Path(onnx_dir) if onnx_dir else default_dir()
    _, digest = weights_file(name, weights_path)
    onnx_path, record = check_export(onnx_dir, name, digest)
    key = (str(onnx_path.resolve()), record["sha256"], int(threads))
    global _sessions_pid
    with _sessions_lock:
        if _sessions_pid != os.getpid():  # forked: sessions are not shared across processes
            _sessions.clear()
            _sessions_pid = os.getpid()
        if key not in _sessions:
            spec = nets.backbone(name)
            _sessions[key] = OnnxBackbone(name, spec.input_size, tuple(spec.mean), tuple(spec.std),
                                          int(record["feature_dim"]), digest,
                                          session(onnx_path, threads), onnx_path)
        return _sessions[key]
