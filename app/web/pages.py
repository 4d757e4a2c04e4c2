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
    """200 with which models are available and loaded in this worker."""
    return jsonify({"status": "ok", "models": registry.model_status(current_app),
                    "face_detection": faces.cascade_available()})
