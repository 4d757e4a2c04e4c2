"""JSON API: thin views that parse the request, call a service, and answer."""
import io

import numpy as np
from flask import Blueprint, current_app, jsonify, request, send_file

from app.config import resolve_path
from app.errors import APIError
from app.inference import faces, imaging
from app.inference.cutout import ALPHAS
from app.storage import db, reports
from app.web import live, registry
from app.web.characters import gallery_names

bp = Blueprint("api", __name__, url_prefix="/api")


def _model_summary(card):
    """The public part of a model card: enough to tell which model answered."""
    keys = ("name", "kind", "version", "created", "architecture", "backbone", "input_size",
            "unknown_threshold", "metrics")
    return {k: card[k] for k in keys if k in card}


@bp.get("/characters")
def characters():
    """Every name the server can answer (head labels and gallery), with details and the card summary."""
    identifier = live.get_identifier()
    names, details = gallery_names(identifier)
    return jsonify({"characters": names, "details": details, "model": _model_summary(identifier.card)})


@bp.post("/faces")
def detect():
    """Anime face boxes in the uploaded image, in its pixels."""
    image = imaging.decode_upload(request.files.get("image"), current_app.config)
    try:
        boxes = faces.detect_faces(np.asarray(imaging.flatten(image)))
    except faces.CascadeMissing:
        raise APIError("Face detection is not installed on this server: run scripts/setup.sh "
                       "to install lbpcascade_animeface.xml.", 503, "detector_unavailable") from None
    return jsonify({"faces": [{"x": x, "y": y, "w": w, "h": h} for x, y, w, h in boxes],
                    "width": image.width, "height": image.height})


@bp.post("/identify")
def identify():
    """Top names for each face crop sent under `faces`, in the order sent."""
    uploads = request.files.getlist("faces")
    limit = int(current_app.config["MAX_FACES"])
    if not uploads:
        raise APIError("Send one or more face images under the field 'faces'.", 400, "missing_file")
    if len(uploads) > limit:
        raise APIError(f"At most {limit} faces per request; {len(uploads)} were sent.", 400,
                       "too_many_faces")
    # Decode everything before touching the model, so a bad file costs no inference.
    images = [imaging.flatten(imaging.decode_upload(u, current_app.config)) for u in uploads]
    identifier = live.get_identifier()  # the live version: a retrained head, or the configured one
    results = identifier.identify(images, gallery=live.get_gallery())
    return jsonify({"faces": results, "model": _model_summary(identifier.card)})


def _parse_box(text, width, height):
    if not text:
        return None
    try:
        # inf and 1e400 overflow int(); nan is a ValueError: both are simply not a box.
        x, y, w, h = (int(round(float(v))) for v in text.split(","))
    except (ValueError, OverflowError):
        raise APIError("box must be four numbers: x,y,w,h.", 400, "bad_box") from None
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise APIError(f"box {x},{y},{w},{h} is not inside the {width}x{height} image.", 400, "bad_box")
    return (x, y, w, h)


def _cutout_options(args):
    """Post-processing switches from the query: alpha=soft|hard|raw, threshold=0..1, largest=1, clean=1."""
    alpha = args.get("alpha", "soft")
    if alpha not in ALPHAS:
        raise APIError(f"alpha must be one of: {', '.join(ALPHAS)}.", 400, "bad_option")
    try:
        threshold = float(args.get("threshold", "0.5"))
    except ValueError:
        threshold = -1.0
    if not 0.0 < threshold < 1.0:
        raise APIError("threshold must be a number between 0 and 1.", 400, "bad_option")
    flags = {}
    for name, key in (("largest", "largest_component"), ("clean", "clean")):
        value = args.get(name, "0")
        if value not in ("0", "1"):
            raise APIError(f"{name} must be 0 or 1.", 400, "bad_option")
        flags[key] = value == "1"
    return {"alpha": alpha, "threshold": threshold, **flags}


@bp.post("/cutout")
def cutout():
    """The uploaded image with its background made transparent (PNG), or `?output=mask`."""
    output = request.args.get("output", "image")
    if output not in ("image", "mask"):
        raise APIError("output must be 'image' or 'mask'.", 400, "bad_output")
    options = _cutout_options(request.args)
    # RGBA stays RGBA: the Cutter keeps transparency the picture already had.
    image = imaging.decode_upload(request.files.get("image"), current_app.config)
    box = _parse_box(request.form.get("box", "").strip(), image.width, image.height)
    cutter = registry.get_cutter()
    if output == "mask":
        png = imaging.png_bytes(cutter.mask(image, box, **options))
        name = "mask.png"
    else:
        png = imaging.png_bytes(cutter.cutout(image, box, **options))
        name = "cutout.png"
    return send_file(io.BytesIO(png), mimetype="image/png", download_name=name, max_age=0)


@bp.post("/reports")
def create_report():
    """Store a wrong-label report: the crop, the right label, and what the model said."""
    image = imaging.decode_upload(request.files.get("face"), current_app.config)
    if "label" not in request.form:
        raise APIError("Send the right name under the field 'label'.", 400, "bad_label")
    config = current_app.config
    try:
        with db.session(current_app._get_current_object(), write=True) as s:
            report, created = reports.submit(s, resolve_path(config["REPORT_DIR"]),
                                             imaging.png_bytes(image),  # re-encoded: no foreign bytes kept
                                             request.form["label"], request.form.get("predicted", ""),
                                             config.get("REPORT_QUOTA_BYTES"))
    except reports.ReportError as exc:
        raise APIError(str(exc), 400, "bad_label") from None
    except reports.QuotaExceeded as exc:
        raise APIError(str(exc), 507, "storage_full") from None
    # The same picture again: the first report stands (200, not a new 201).
    return jsonify({"id": report.id, "label": report.label, "duplicate": not created}), 201 if created else 200
