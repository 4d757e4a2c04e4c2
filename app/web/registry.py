"""Models, loaded lazily once per worker process on first use and shared read-only by requests.

Nothing loads at import time or in gunicorn's master: the first request in each worker loads
what it needs. The cache remembers the process id, so a fork after loading reloads rather than
sharing torch state across processes.
"""
import os
import threading

from flask import current_app

from app.config import ROOT, model_path, resolve_path, torch_threads
from app.errors import APIError

KINDS = {
    # kind: (config key, how an operator gets one)
    "classifier": ("CLASSIFIER_MODEL", "scripts/setup.sh (demo model) or "
                   "`flask --app wsgi train classifier`"),
    "cutout": ("CUTOUT_MODEL", "scripts/setup.sh (demo model) or `flask --app wsgi train cutout`"),
}

_lock = threading.Lock()


class ModelUnavailable(APIError):
    """503: a model this request needs is not installed or cannot be loaded."""

    def __init__(self, message):
        super().__init__(message, 503, "model_unavailable")


def _state(app):
    state = app.extensions.setdefault("models", {"pid": os.getpid(), "models": {}})
    if state["pid"] != os.getpid():
        state.update(pid=os.getpid(), models={})
    return state


def _load(kind, directory):
    threads = torch_threads(current_app.config)
    if kind == "classifier":
        from app.inference.identify import Identifier
        # build=False: serving never exports; a missing export is a 503 naming the command.
        return Identifier.load(directory, resolve_path(current_app.config["ONNX_DIR"]), threads, build=False)
    import torch
    torch.set_num_threads(threads)
    from app.inference.cutout import Cutter
    return Cutter.load(directory)


def _shown(directory):
    # Operators need the path; clients need not see the server's absolute layout.
    try:
        return str(directory.relative_to(ROOT))
    except ValueError:
        return directory.name


def get_model(kind):
    """The loaded model of `kind` ("classifier" or "cutout"); ModelUnavailable (503) if it cannot be."""
    app = current_app._get_current_object()
    state = _state(app)
    model = state["models"].get(kind)
    if model is not None:
        return model
    key, how = KINDS[kind]
    directory = model_path(app.config, key)
    if not (directory / "card.json").is_file():
        raise ModelUnavailable(f"No {kind} model at {_shown(directory)} (card.json missing). "
                               f"Install one with {how}, or set FLASK_{key}.")
    with _lock:
        model = state["models"].get(kind)
        if model is None:
            try:
                model = _load(kind, directory)
            except Exception as exc:  # ModelError, bad card, unreadable weights: all mean 503
                app.logger.warning("cannot load %s model from %s: %s", kind, directory, exc)
                raise ModelUnavailable(f"The {kind} model at {_shown(directory)} cannot be loaded: {exc}") from None
            state["models"][kind] = model
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
