"""Models, loaded lazily once per worker process on first use and shared read-only by requests.

Nothing loads at import time or in gunicorn's master: the first request in each worker loads
what it needs. The cache remembers the process id, so a fork after loading reloads rather than
sharing torch state across processes.
"""
import os
import threading
from pathlib import Path

from flask import current_app

from app.config import ROOT, model_path, torch_threads
from app.errors import APIError

KINDS = {
    # kind: (config key, how an operator gets one)
    "classifier": ("CLASSIFIER_MODEL", "scripts/setup.sh (demo model) or "
                   "`flask --app wsgi train classifier`"),
    "cutout": ("CUTOUT_MODEL", "scripts/setup.sh (demo model) or `flask --app wsgi train cutout`"),
    "embedding": ("EMBEDDING_MODEL", "git (models/demo-embedding) or `python scripts/gallery_figures.py`"),
}

_lock = threading.Lock()


class ModelUnavailable(APIError):
    """503: a model this request needs is not installed or cannot be loaded."""

    def __init__(self, message):
        super().__init__(message, 503, "model_unavailable")


def _state(app):
    state = app.extensions.setdefault("models", {"pid": os.getpid(), "models": {}, "dirs": {}})
    if state["pid"] != os.getpid():
        state.update(pid=os.getpid(), models={}, dirs={})
    return state


def _load(kind, directory):
    import torch
    torch.set_num_threads(torch_threads(current_app.config))
    if kind == "classifier":
        from app.inference.identify import Identifier
        return Identifier.load(directory)
    if kind == "embedding":
        from app.inference.gallery import Embedder
        return Embedder.load(directory)
    from app.inference.cutout import Cutter
    return Cutter.load(directory)


def _shown(directory):
    # Operators need the path; clients need not see the server's absolute layout.
    try:
        return str(directory.relative_to(ROOT))
    except ValueError:
        return directory.name


def get_model(kind, directory=None):
    """The loaded model of `kind` ("classifier", "cutout", "embedding"); ModelUnavailable (503) if it cannot be.

    `directory` overrides the configured one (a retrained classifier made live): a worker
    holding another directory's model loads this one and drops the old.
    """
    app = current_app._get_current_object()
    state = _state(app)
    key, how = KINDS[kind]
    directory = Path(directory) if directory else model_path(app.config, key)
    model = state["models"].get(kind)
    if model is not None and state["dirs"].get(kind) == directory:
        return model
    if not (directory / "card.json").is_file():
        raise ModelUnavailable(f"No {kind} model at {_shown(directory)} (card.json missing). "
                               f"Install one with {how}, or set FLASK_{key}.")
    with _lock:
        model = state["models"].get(kind)
        if model is None or state["dirs"].get(kind) != directory:
            try:
                model = _load(kind, directory)
            except Exception as exc:  # ModelError, bad card, unreadable weights: all mean 503
                app.logger.warning("cannot load %s model from %s: %s", kind, directory, exc)
                raise ModelUnavailable(f"The {kind} model at {_shown(directory)} cannot be loaded: {exc}") from None
            state["models"][kind] = model
            state["dirs"][kind] = directory
    return model


def get_identifier():
    """The process's classifier (app.inference.identify.Identifier)."""
    return get_model("classifier")


def get_cutter():
    """The process's cutout network (app.inference.cutout.Cutter)."""
    return get_model("cutout")


def model_status(app):
    """{kind: {"loaded", "available", "path"}} without loading anything."""
    state = _state(app)
    status = {}
    for kind, (key, _) in KINDS.items():
        directory = model_path(app.config, key)
        status[kind] = {"loaded": kind in state["models"],
                        "available": (directory / "card.json").is_file(),
                        "path": _shown(directory)}
    return status
