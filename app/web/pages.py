"""The page and the health check."""
from flask import Blueprint, current_app, jsonify, render_template

from app.inference import faces
from app.web import registry

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    """The single-page app."""
    return render_template("index.html", detector=faces.DETECTOR)


@bp.get("/healthz")
def healthz():
    """200 when every model this server needs can be used, 503 (same body) when one cannot.

    Ready means: loaded in this worker, or card and weights (sha256) check out and no load of
    those files has failed. Nothing is loaded here; see registry.readiness."""
    models = registry.model_status(current_app)
    detection = faces.cascade_available()
    ready = detection and all(m["ready"] for m in models.values())
    body = {"status": "ok" if ready else "not_ready", "models": models, "face_detection": detection}
    response = jsonify(body)
    response.vary.add("Accept-Language")  # a model's "error" is in the request's language
    return response, 200 if ready else 503
