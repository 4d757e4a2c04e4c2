"""The page and the health check."""
from flask import Blueprint, current_app, jsonify, render_template

from app.i18n import translate
from app.inference import faces
from app.serving import registry
from app.storage import health

bp = Blueprint("web", __name__)


@bp.get("/")
def index():
    """The single-page app."""
    return render_template("index.html", detector=faces.DETECTOR)


@bp.get("/healthz")
def healthz():
    """200 when every model this server needs can be used, 503 (same body) when one cannot.

    Ready means: loaded in this worker, or card and weights (sha256) check out and no load of
    those files has failed. Nothing is loaded here; see registry.readiness. The database
    unreachable or the report folder's disk low make it "degraded" with its reasons, still 200:
    identify and cutout keep answering, so a balancer should keep sending them here."""
    app = current_app._get_current_object()
    models = registry.model_status(app)
    detection = faces.cascade_available()
    ready = detection and all(m["ready"] for m in models.values())
    storage, disk = health.database_state(app), health.disk_state(app)
    reasons = [translate(reason) for reason in health.reasons(storage, disk)]
    status = "not_ready" if not ready else "degraded" if reasons else "ok"
    body = {"status": status, "models": models, "face_detection": detection, "storage": storage,
            "disk": disk, "reasons": reasons}
    response = jsonify(body)
    response.vary.add("Accept-Language")  # a model's "error" and the reasons are in the request's language
    return response, 200 if ready else 503
