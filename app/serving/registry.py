"""Models, loaded lazily once per worker process on first use and shared read-only by requests.

Nothing loads at import time or in gunicorn's master: the first request in each worker loads
what it needs. The cache remembers the process id, so a fork after loading reloads rather than
sharing torch state across processes.

A model that cannot be loaded is remembered as failed: requests get a 503 at once, without
touching its files, until a retry is due (MODEL_RETRY_SECONDS, doubling up to
MODEL_RETRY_MAX_SECONDS) or its files change (an operator restored them). Clients are told
which model is missing; the path, the reason and the command that fixes it go to the log.

Cutout models (the default and each `?model=` choice) are kept up to CUTOUT_MODELS_LOADED per
worker: loading one more unloads the least recently used first, so anonymous requests naming
every model cannot grow a worker past that many.
"""
import collections
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from app import process_state
from app.config import ROOT, cutout_threads, model_path, resolve_path, torch_threads
from app.errors import APIError
from app.i18n import _, translate
from app.serving import memory

KINDS = {
    # kind: (config key, how an operator gets one)
    "classifier": ("CLASSIFIER_MODEL", "scripts/setup.sh (demo model) or "
                   "`flask --app wsgi train classifier`"),
    "cutout": ("CUTOUT_MODEL", "scripts/setup.sh (builds isnet-general and isnet-anime from npm and exports "
               "u2netp-anime and demo-cutout) or `flask --app wsgi train cutout`"),
    "embedding": ("EMBEDDING_MODEL", "git (models/demo-embedding) or `python scripts/gallery_figures.py`"),
}

# What clients are told when a model cannot be used (the operator's log has the path and the fix).
NOT_INSTALLED = {
    "classifier": _("No classifier model is installed on this server. The operator's log says why."),
    "cutout": _("No cutout model is installed on this server. The operator's log says why."),
    "embedding": _("No embedding model is installed on this server. The operator's log says why."),
}
CANNOT_LOAD = {
    "classifier": _("The classifier model on this server cannot be loaded. The operator's log says why."),
    "cutout": _("The cutout model on this server cannot be loaded. The operator's log says why."),
    "embedding": _("The embedding model on this server cannot be loaded. The operator's log says why."),
}

_lock = threading.Lock()
clock = time.monotonic  # when a retry is due; tests step it instead of waiting


class ModelUnavailable(APIError):
    """503: a model this request needs is not installed or cannot be loaded."""

    def __init__(self, message, retry_after=None):
        super().__init__(message, 503, "model_unavailable")
        self.retry_after = retry_after


class NotInstalled(Exception):
    """The configured model directory has no card."""


@dataclass
class Failure:
    """A failed load, remembered so that requests do not retry it until `retry_at`."""
    public: object       # what clients are told (an app/i18n.py Message)
    action: str          # "load" or "verify"
    attempts: int
    retry_at: float      # clock()
    signature: tuple     # the model directory's files when it failed

    def error(self):
        return ModelUnavailable(self.public, max(1, math.ceil(self.retry_at - clock())))


def _state(app):
    return process_state.of(app, "models", lambda: {
        "models": {}, "dirs": {}, "failures": {}, "verified": {},
        "recent": collections.OrderedDict()})  # recent: cutout slots, least recently used first


def _is_cutout(slot):
    return slot == "cutout" or slot.startswith("cutout:")


def _make_room(app, state, slot):
    """Unload least recently used cutout models until one more fits CUTOUT_MODELS_LOADED (under _lock).

    A request still using an unloaded model keeps it alive until it ends; then its memory goes."""
    limit = max(1, int(app.config.get("CUTOUT_MODELS_LOADED") or 1))
    loaded = [s for s in state["recent"] if s in state["models"] and s != slot]
    while len(loaded) >= limit:
        victim = loaded.pop(0)
        state["models"].pop(victim, None)
        state["dirs"].pop(victim, None)
        state["recent"].pop(victim, None)
        app.logger.info("unloaded cutout model %s: at most %d kept loaded (CUTOUT_MODELS_LOADED)", victim, limit)


def _signature(directory):
    """(name, size, mtime, inode) of each file in a model directory: changes when anyone touches it."""
    try:
        files = [(e.name, e.stat()) for e in os.scandir(directory) if e.is_file()]
    except OSError:
        return ()
    return tuple(sorted((name, st.st_size, st.st_mtime_ns, st.st_ino) for name, st in files))


def _load(kind, directory):
    if not (directory / "card.json").is_file():
        raise NotInstalled("card.json missing")
    threads = torch_threads(current_app.config)
    if kind == "classifier":
        from app.inference.identify import Identifier
        # Serving never exports: a missing export is a 503 naming the command.
        return Identifier.load(directory, resolve_path(current_app.config["ONNX_DIR"]), threads)
    if kind == "embedding":
        from app.inference.gallery import Embedder
        return Embedder.load(directory, resolve_path(current_app.config["ONNX_DIR"]), threads)
    from app.inference.cutout import Cutter
    return Cutter.load(directory, threads=cutout_threads(current_app.config))  # ONNX Runtime: no torch


def _verify(kind, directory):
    """Check a model directory without loading it: its card, and its weights' sha256."""
    if not (directory / "card.json").is_file():
        raise NotInstalled("card.json missing")
    from app.storage.model_dirs import load_card, verify_weights
    card = load_card(directory)
    if card.get("kind") != kind:
        raise ValueError(f"card.json says kind {card.get('kind')!r}, not {kind!r}")
    if card.get("weights"):  # raw-feature embeddings have none (load_card allows that for them only)
        verify_weights(directory, card)


def _shown(directory):
    # Operators need the path; clients need not see the server's absolute layout.
    try:
        return str(directory.relative_to(ROOT))
    except ValueError:
        return directory.name


def _attempt(app, state, kind, action, directory=None, slot=None):
    """Run `action(kind, directory)` unless a remembered failure says wait; remember a new failure.

    directory: the configured model of `kind` unless given; slot: where its state is kept."""
    key, how = KINDS[kind]
    directory = directory or model_path(app.config, key)
    slot = slot or kind
    signature = _signature(directory)
    failure = state["failures"].get(slot)
    if failure and failure.signature == signature and clock() < failure.retry_at:
        raise failure.error()
    try:
        result = action(kind, directory)
    except Exception as exc:  # ModelError, bad card, unreadable weights: all mean 503
        attempts = failure.attempts + 1 if failure and failure.signature == signature else 1
        delay = min(float(app.config["MODEL_RETRY_MAX_SECONDS"]),
                    float(app.config["MODEL_RETRY_SECONDS"]) * 2 ** (attempts - 1))
        if isinstance(exc, NotInstalled):
            public = NOT_INSTALLED[kind]
            app.logger.error("no %s model at %s (card.json missing): install one with %s, or set "
                             "FLASK_%s; next try in %.0f s", kind, directory, how, key, delay)
        else:
            public = CANNOT_LOAD[kind]
            app.logger.error("cannot load the %s model from %s: %s; next try in %.0f s",
                             kind, directory, exc, delay)
        failure = Failure(public, action.__name__.strip("_"), attempts,
                          clock() + delay, signature)
        state["failures"][slot] = failure
        raise failure.error() from None
    state["failures"].pop(slot, None)
    return result, signature


def get_model(kind, directory=None, slot=None):
    """The loaded model of `kind` ("classifier", "cutout", "embedding"); ModelUnavailable (503)
    if it cannot be loaded.

    directory: instead of the configured one (a retrained classifier made live, a request's
    cutout choice). slot: where it is kept, `kind` unless given; a slot holding another
    directory's model loads this one and drops the old (a newly live classifier replaces the last).
    """
    app = current_app._get_current_object()
    state = _state(app)
    directory = Path(directory) if directory else model_path(app.config, KINDS[kind][0])
    slot = slot or kind
    model = state["models"].get(slot)
    if model is not None and state["dirs"].get(slot) == directory and not _is_cutout(slot):
        return model
    with _lock:
        model = state["models"].get(slot)
        if model is None or state["dirs"].get(slot) != directory:
            if _is_cutout(slot):
                _make_room(app, state, slot)
            model, _signature_now = _attempt(app, state, kind, _load, directory, slot)
            # What loading parsed and copied lies free in malloc's arenas: handed back now, before
            # this request's forward pass adds its own (app/serving/memory.py).
            memory.give_back()
            state["models"][slot] = model
            state["dirs"][slot] = directory
        if _is_cutout(slot):
            state["recent"][slot] = True
            state["recent"].move_to_end(slot)
    return model


def cutout_models(app):
    """{name: card} of the cutout model directories under MODEL_DIR that a request may choose."""
    from app.storage.model_dirs import ModelError, list_model_dirs, load_card
    found = {}
    for directory in list_model_dirs(resolve_path(app.config["MODEL_DIR"])):
        try:
            card = load_card(directory)
        except ModelError:
            continue
        if card.get("kind") == "cutout":
            found[directory.name] = card
    return found


def model_path_name(app, kind):
    """The folder name of the configured model of `kind`."""
    return model_path(app.config, KINDS[kind][0]).name


def get_cutter(name=None):
    """The process's cutout network (app.inference.cutout.Cutter): the configured default, or the
    model directory `name` under MODEL_DIR (a request's ?model=), APIError 400 for an unknown one."""
    app = current_app._get_current_object()
    if not name or model_path(app.config, "CUTOUT_MODEL") == resolve_path(app.config["MODEL_DIR"]) / name:
        return get_model("cutout")
    choices = cutout_models(app)
    if name not in choices:
        raise APIError(_("Unknown cutout model %(name)s; choose one of: %(choices)s.", name=repr(name),
                         choices=", ".join(sorted(choices))),
                       400, "unknown_model")
    return get_model("cutout", resolve_path(app.config["MODEL_DIR"]) / name, slot=f"cutout:{name}")


def readiness(app, kind):
    """(ready, reason for clients or None) without loading: loaded, or card and weights check out.

    The weights are hashed once per change of the model directory's files, and a failure is
    remembered like a failed load, so a health check polled every second costs a directory listing."""
    state = _state(app)
    if kind in state["models"]:
        return True, None
    with _lock:
        directory = model_path(app.config, KINDS[kind][0])
        signature = _signature(directory)
        failure = state["failures"].get(kind)
        if failure and failure.action == "load" and failure.signature == signature:
            return False, failure.public  # files unchanged since a load failed: only a load can tell
        if state["verified"].get(kind) == signature and not failure:
            return True, None
        try:
            _result, signature = _attempt(app, state, kind, _verify)
        except ModelUnavailable as exc:
            return False, exc.message
        state["verified"][kind] = signature
        return True, None


def model_status(app):
    """{kind: {"ready", "available", "loaded", "path"[, "error"]}} without loading anything."""
    state = _state(app)
    status = {}
    for kind, (key, _how) in KINDS.items():
        ready, reason = readiness(app, kind)
        status[kind] = {"ready": ready, "available": ready, "loaded": kind in state["models"],
                        "path": _shown(model_path(app.config, key))}
        if reason:
            status[kind]["error"] = translate(reason)  # in the request's language
    return status
