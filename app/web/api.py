"""JSON API: thin views that parse the request, call a service, and answer."""
import io
import math
from pathlib import Path

import numpy as np
from flask import Blueprint, current_app, jsonify, request, send_file
from PIL import Image

from app.config import resolve_path
from app.errors import APIError
from app.i18n import _, message_of
from app.inference import faces, imaging
from app.inference.decontaminate import decontaminate
from app.serving import live, registry
from app.storage import db, reports
from app.web import stickers
from app.web.admission import limited
from app.web.characters import gallery_names
from app.web.options import background_colour, cutout_options, switch

bp = Blueprint("api", __name__, url_prefix="/api")
# The description of the whole HTTP API, kept beside the code (tests check it against the routes).
OPENAPI = Path(__file__).with_name("openapi.json")


def _model_summary(card):
    """The public part of a model card: enough to tell which model answered."""
    keys = ("name", "kind", "version", "created", "architecture", "backbone", "input_size",
            "unknown_threshold", "metrics")
    return {k: card[k] for k in keys if k in card}


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of this API."""
    return current_app.response_class(OPENAPI.read_bytes(), mimetype="application/json")


@bp.get("/characters")
def characters():
    """Every name the server can answer (head labels and gallery), with details and the card summary."""
    identifier = live.get_identifier()
    names, details = gallery_names(identifier)
    return jsonify({"characters": names, "details": details, "model": _model_summary(identifier.card)})


@bp.get("/models")
def models():
    """The cutout models a request may choose (?model=NAME), the default first, with their figures."""
    default = registry.model_path_name(current_app, "cutout")
    cards = registry.cutout_models(current_app)
    names = sorted(cards, key=lambda n: (n != default, n))
    return jsonify({"cutout": [{**_model_summary(cards[n]), "name": n, "default": n == default}
                               for n in names]})


@bp.post("/faces")
def detect():
    """Anime face boxes in the uploaded image, in its pixels."""
    # Detection works at MAX_DETECT_SIDE anyway: scale down on arrival, map boxes back.
    image = imaging.decode_upload(request.files.get("image"), current_app.config,
                                  max_side=faces.MAX_DETECT_SIDE)
    width, height = imaging.source_size(image)
    try:
        boxes = faces.detect_faces(np.asarray(imaging.flatten(image)))
    except faces.CascadeMissing as exc:
        current_app.logger.error("face detection unavailable: %s", exc)
        raise APIError(_("Face detection is not installed on this server."), 503,
                       "detector_unavailable") from None
    sx, sy = width / image.width, height / image.height
    return jsonify({"faces": [{"x": round(x * sx), "y": round(y * sy), "w": round(w * sx), "h": round(h * sy)}
                              for x, y, w, h in boxes],
                    "width": width, "height": height})


@bp.post("/identify")
@limited("identify")
def identify():
    """Top names for each face crop sent under `faces`, in the order sent."""
    uploads = request.files.getlist("faces")
    limit = int(current_app.config["MAX_FACES"])
    if not uploads:
        raise APIError(_("Send one or more face images under the field 'faces'."), 400, "missing_file")
    if len(uploads) > limit:
        raise APIError(_("At most %(limit)d faces per request; %(sent)d were sent.", limit=limit,
                         sent=len(uploads)), 400, "too_many_faces")
    # Decode everything before touching the model, so a bad file costs no inference.
    images = [imaging.flatten(image) for image in imaging.decode_uploads(
        uploads, current_app.config, max_pixels=int(current_app.config["MAX_FACE_PIXELS"]))]
    identifier = live.get_identifier()  # the live version: a retrained head, or the configured one
    results = identifier.identify(images, gallery=live.get_gallery())
    return jsonify({"faces": results, "model": _model_summary(identifier.card)})


@bp.post("/animation/characters")
@limited("identify")
def animation_characters():
    """The characters of an animated picture, each named once by its frames' votes, with the frames
    (and boxes) it appears in."""
    return stickers.name_characters(request.files.get("image"))


def _parse_box(text, width, height):
    if not text:
        return None
    try:
        # inf and 1e400 overflow int(); nan is a ValueError: both are simply not a box.
        x, y, w, h = (int(round(float(v))) for v in text.split(","))
    except (ValueError, OverflowError):
        raise APIError(_("box must be four numbers: x,y,w,h."), 400, "bad_box") from None
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise APIError(_("box %(box)s is not inside the %(width)dx%(height)d image.", box=f"{x},{y},{w},{h}",
                         width=width, height=height), 400, "bad_box")
    return (x, y, w, h)


MAX_FACES = 64


def _parse_faces(text, width, height):
    """Face boxes "x,y,w,h;x,y,w,h" (the detector's, or drawn by hand): a list, maybe empty."""
    parts = [part for part in text.split(";") if part.strip()]
    if len(parts) > MAX_FACES:
        raise APIError(_("At most %(limit)d faces can be given.", limit=MAX_FACES), 400, "bad_box")
    return [_parse_box(part.strip(), width, height) for part in parts]


def _scale_box(box, source, size):
    """A box in the picture's pixels as sent -> the same region in its scaled-down copy."""
    if box is None or source == size:
        return box
    sx, sy = size[0] / source[0], size[1] / source[1]
    x0, y0 = min(size[0] - 1, int(box[0] * sx)), min(size[1] - 1, int(box[1] * sy))
    x1 = min(size[0], max(x0 + 1, math.ceil((box[0] + box[2]) * sx)))
    y1 = min(size[1], max(y0 + 1, math.ceil((box[1] + box[3]) * sy)))
    return (x0, y0, x1 - x0, y1 - y0)


@bp.post("/cutout")
@limited("cutout")
def cutout():
    """The uploaded image with its background made transparent (PNG), or `?output=mask`;
    `background=RRGGBB` lays the cutout over that colour (an opaque PNG)."""
    output = request.args.get("output", "image")
    if output not in ("image", "mask"):
        raise APIError(_("output must be 'image' or 'mask'."), 400, "bad_output")
    options = cutout_options(request.args)
    background = background_colour(request.args, output)
    # Edge colours freed of the old background: the default for the transparent picture.
    clean_edges = switch(request.args, "decontaminate", "1")
    # A GIF, animated WebP or APNG, or a clip: cut out frame by frame into an animated sticker
    # (app/web/stickers.py); animated=0 keeps the picture way (an animation's first frame).
    if switch(request.args, "animated", "1"):
        animated = stickers.read_if_animated(request.files.get("image"), current_app.config)
        if animated is not None:
            return stickers.cutout_animation(animated, request.args, output, options, clean_edges)
    # RGBA stays RGBA: the Cutter keeps transparency the picture already had. A picture over
    # MAX_CUTOUT_PIXELS is cut out at that size: the answer's size is bounded, whatever was sent.
    # full=1 asks for up to MAX_CUTOUT_FULL_PIXELS where the operator allows more (0: never more).
    image = imaging.decode_upload(request.files.get("image"), current_app.config,
                                  max_pixels=_cutout_pixels(current_app.config, switch(request.args, "full", "0")))
    source = imaging.source_size(image)
    box = _scale_box(_parse_box(request.form.get("box", "").strip(), *source), source, image.size)
    # Faces as prompts: keep the figures these faces lie on (prompt=0 turns it off); with
    # `face`, the one character whose face it is.
    faces = [_scale_box(b, source, image.size) for b in _parse_faces(request.form.get("faces", ""), *source)]
    face = _scale_box(_parse_box(request.form.get("face", "").strip(), *source), source, image.size)
    if not switch(request.args, "prompt", "1"):
        faces, face = [], None
    prompt = {"faces": faces, "face": face}
    cutter = registry.get_cutter(request.args.get("model"))
    if output == "mask":
        png = imaging.png_bytes(cutter.mask(image, box, **prompt, **options))
        name = "mask.png"
    else:
        rgba = cutter.cutout(image, box, **prompt, **options)
        if clean_edges:
            rgba = Image.fromarray(decontaminate(np.asarray(rgba)))
        png = imaging.png_bytes(rgba if background is None else imaging.flatten(rgba, tuple(background)))
        name = "cutout.png"
    response = send_file(io.BytesIO(png), mimetype="image/png", download_name=name, max_age=0)
    # Never a silent downscale: the size as sent and the size worked on (and answered) are told.
    response.headers["X-Source-Size"] = "{}x{}".format(*source)
    response.headers["X-Output-Size"] = "{}x{}".format(*image.size)
    return response


def _cutout_pixels(config, full):
    """The most pixels a cutout works on: MAX_CUTOUT_PIXELS, or the full-size budget when asked and allowed."""
    fitted = int(config["MAX_CUTOUT_PIXELS"])
    return max(fitted, int(config.get("MAX_CUTOUT_FULL_PIXELS") or 0)) if full else fitted


@bp.post("/reports")
def create_report():
    """Store a wrong-label report: the crop, the right label, and what the model said (rate-limited:
    app/web/ratelimit.py)."""
    # Stored scaled down to MAX_REPORT_PIXELS: a face needs no more to train on.
    image = imaging.decode_upload(request.files.get("face"), current_app.config,
                                  max_pixels=int(current_app.config["MAX_REPORT_PIXELS"]))
    if "label" not in request.form:
        raise APIError(_("Send the right name under the field 'label'."), 400, "bad_label")
    config = current_app.config
    try:
        with db.session(current_app._get_current_object(), write=True) as s:
            report, created = reports.submit(s, resolve_path(config["REPORT_DIR"]),
                                             imaging.png_bytes(image),  # re-encoded: no foreign bytes kept
                                             request.form["label"], request.form.get("predicted", ""),
                                             config.get("REPORT_QUOTA_BYTES"))
    except reports.ReportError as exc:
        raise APIError(message_of(exc), 400, "bad_label") from None
    except reports.QuotaExceeded as exc:
        raise APIError(message_of(exc), 507, "storage_full") from None
    # The same picture again: the first report stands (200, not a new 201).
    return jsonify({"id": report.id, "label": report.label, "duplicate": not created}), 201 if created else 200
