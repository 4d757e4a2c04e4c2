"""What changes while the server runs, seen by every worker without a restart: the live
classifier (a retrained version, or the configured one) and the gallery of enrolled faces.

Each request that needs them reads the version counters once (one small query); a worker
re-reads the gallery or loads the live model only when a counter moved. Faces enrolled by
another worker already have their embeddings in the database; any that lack one for this
worker's embedder (a new embedding model) are computed here once and stored.
"""
import io
import threading

from flask import current_app, g
from PIL import Image
from sqlalchemy.exc import InterfaceError, OperationalError

from app import process_state
from app.config import resolve_path
from app.serving import registry
from app.storage import db, gallery, images, model_versions

_lock = threading.Lock()


def _state(app):
    return process_state.of(app, "live", lambda: {"classifier": (None, None), "gallery": (None, None),
                                                  "counters": None})


def counters():
    """The database's version counters, read once per request.

    With the database unreachable, the last counters this worker read stand in: identify keeps
    answering with the model and gallery it holds. A worker that never read them raises."""
    if "live_counters" not in g:
        app = current_app._get_current_object()
        state = _state(app)
        try:
            state["counters"] = db.counters(app)
        except (OperationalError, InterfaceError) as exc:
            if state.get("counters") is None:
                raise
            app.logger.warning("database unreachable, serving the last live model and gallery: %s", exc)
        g.live_counters = state["counters"]
    return g.live_counters


def classifier_dir():
    """The live classifier's model directory, or None for the configured one."""
    app = current_app._get_current_object()
    state = _state(app)
    version = counters().get(model_versions.COUNTER, 0)
    cached_version, directory = state["classifier"]
    if cached_version != version:
        with db.session(app) as s:
            row = model_versions.live(s)
            directory = model_versions.local_dir(s, resolve_path(app.config["REPORT_DIR"]), row) if row else None
        state["classifier"] = (version, directory)
    return directory


def get_identifier():
    """This worker's live Identifier (loads a newly live version on the first request after the switch)."""
    return registry.get_model("classifier", classifier_dir())


def get_embedder(required=True):
    """The embedding model, or None when it is not installed and `required` is False."""
    try:
        return registry.get_model("embedding")
    except registry.ModelUnavailable:
        if required:
            raise
        return None


def _embed_missing(app, embedder, rows):
    root = resolve_path(app.config["REPORT_DIR"])
    todo, pictures = [], []
    with db.session(app) as s:
        for face_id, _, sha256, vector in rows:
            if vector is not None:
                continue
            try:
                with Image.open(io.BytesIO(images.read(s, root, sha256))) as im:
                    pictures.append(im.convert("RGB"))
                todo.append(face_id)
            except (OSError, ValueError):
                app.logger.warning("enrolled face %s: picture %s is missing or unreadable", face_id, sha256)
    if not todo:
        return {}
    vectors = embedder.from_images(pictures)
    found = {face_id: v.astype("<f4").tobytes() for face_id, v in zip(todo, vectors)}
    with db.session(app, write=True) as s:
        gallery.put_embeddings(s, embedder.key, found)
    return found


def get_gallery():
    """The current Gallery (app.inference.gallery), or None without an embedding model."""
    import numpy as np

    from app.inference.gallery import Gallery
    app = current_app._get_current_object()
    embedder = get_embedder(required=False)
    if embedder is None:
        return None
    state = _state(app)
    version = (counters().get(gallery.COUNTER, 0), embedder.key)
    cached_version, current = state["gallery"]
    if cached_version == version:
        return current
    with _lock:
        cached_version, current = state["gallery"]
        if cached_version == version:
            return current
        with db.session(app) as s:
            rows = gallery.faces_with_embeddings(s, embedder.key)
        found = _embed_missing(app, embedder, rows)
        names, vectors = [], []
        for face_id, name, _, vector in rows:
            vector = found.get(face_id, vector)
            if vector is not None:
                names.append(name)
                vectors.append(np.frombuffer(vector, "<f4"))
        current = Gallery(embedder, names, np.stack(vectors) if vectors else np.zeros((0, 1), np.float32))
        state["gallery"] = (version, current)
    return current
