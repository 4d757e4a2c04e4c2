"""Frozen ImageNet backbones that turn face crops into feature vectors.

Each backbone carries the preprocessing its weights were trained with (input size, mean,
std), so training and serving build the same tensors (see app/inference/preprocess.py); the one
table of them is app/nets.ARCHITECTURES.
"""
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from app import nets
from app.inference.preprocess import face_arrays
from app.storage.files import sha256_file
from app.storage.model_dirs import ModelError


@dataclass
class Backbone:
    """A loaded, frozen backbone plus the preprocessing constants of its weights."""

    name: str
    module: nn.Module
    input_size: int
    mean: tuple
    std: tuple
    feature_dim: int
    weights_path: Path
    weights_sha256: str

    @torch.no_grad()  # not inference_mode: callers train heads on these tensors
    def features(self, batch):
        """N x 3 x S x S normalised batch -> N x feature_dim float tensor (no grad)."""
        if batch.shape[0] == 0:
            return torch.empty(0, self.feature_dim)
        return self.module.forward_features(batch)


def _clean_state_dict(state):
    # Checkpoints saved from DataParallel or torch.compile carry these prefixes.
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


_cache = {}
_cache_pid = os.getpid()
_cache_lock = threading.Lock()


def load_backbone(name, weights_path=None):
    """Load backbone `name` with its ImageNet weights (strict), frozen, in eval mode; cached per process."""
    spec = nets.backbone(name)
    path = Path(weights_path) if weights_path else spec.default_weights()
    key = (name, str(path.resolve()) if path.exists() else str(path))
    global _cache_pid
    with _cache_lock:
        if _cache_pid != os.getpid():  # forked after loading: load afresh in this process
            _cache.clear()
            _cache_pid = os.getpid()
        if key in _cache:
            return _cache[key]
        if not path.is_file():
            raise ModelError(f"{name} weights not found at {path}; run `{spec.fetch_hint}`")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"cannot read {path} ({exc}); run `{spec.fetch_hint}` again") from None
        module = nets.build(name, "backbone")
        try:
            module.load_state_dict(_clean_state_dict(state), strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{path} does not fit {name}: {str(exc)[:300]}") from None
        module.eval()
        for param in module.parameters():
            param.requires_grad_(False)
        backbone = Backbone(name, module, spec.input_size, tuple(spec.mean), tuple(spec.std),
                            module.feature_dim, path, sha256_file(path))
        _cache[key] = backbone
        return backbone


def face_batch(images, backbone):
    """A list of face crops -> N x 3 x S x S tensor for `backbone` (the one preprocessing,
    app/inference/preprocess.py, as serving feeds ONNX Runtime)."""
    return torch.from_numpy(face_arrays(images, backbone.input_size, backbone.mean, backbone.std))
