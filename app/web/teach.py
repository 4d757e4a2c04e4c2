"""Teaching a cast from an episode, for operators: upload material (a job on the queue), then name
each group of faces in one action, merge two groups, drop faces that do not belong, discard a group.

POST /api/teach takes one video or animated picture, or several pictures, under `material`;
its job is followed and cancelled through /api/jobs/<id> like any other. The session's groups
are read and acted on under /api/teach/<session>; the page /teach/<session> does the same.
"""
import io
import tempfile
import warnings
from pathlib import Path

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, send_file, url_for
from PIL import Image

from app.config import resolve_path
from app.errors import APIError
from app.i18n import _, message_of
from app.inference import imaging
from app.jobs import files, queue, store
from app.jobs import teach as teach_job
from app.serving import live
from app.storage import db, images
from app.storage.labels import spelling_in
from app.storage.models import iso
from app.storage.reports import ReportError, clean_label
from app.teach import material
from app.teach import store as teach_store
from app.web import auth
from app.web.auth import operator_required

bp = Blueprint("teach", __name__)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_PICTURES = 2000
ANSWER_FACES = 3  # typical faces per group asked "who is this?" for the card
ANIMATION_FORMATS = ("GIF", "PNG", "WEBP")
MAX_ANIMATION_FRAMES = 20_000  # every frame is decoded to find the sampled ones: bounded


def _app():
    return current_app._get_current_object()


def _root():
    return resolve_path(current_app.config["REPORT_DIR"])


@bp.get("/teach")
@bp.get("/teach/<key>")
def page(key=None):
    """The teach page (operators; others are sent to sign in)."""
    if not auth.is_signed_in():
        return redirect(url_for("auth.signin", next=request.full_path.rstrip("?")), code=303)
    return auth.operator_page(render_template("teach.html", session_key=key or ""))


def _check_material(uploads, config):
    """Refuse what cannot be taught from, before anything is stored: 400, 413 or 415."""
    most = int(config.get("TEACH_MAX_PICTURES", DEFAULT_MAX_PICTURES))
    if not uploads:
        raise APIError(_("Send a video, an animated picture or pictures under the field 'material'."), 400,
                       "missing_file")
    if len(uploads) > most:
        raise APIError(_("At most %(limit)d pictures per teach session; %(sent)d were sent.", limit=most,
                         sent=len(uploads)), 413, "too_many_pictures")
    datas = [u.read() for u in uploads]
    if any(not d for d in datas):
        raise APIError(_("An uploaded file is empty."), 400, "empty_file")
    if len(datas) > 1:
        for data in datas:
            try:
                imaging.open_image(data, len(data) + 1, int(config["MAX_IMAGE_PIXELS"]))[1].close()
            except APIError as exc:
                raise APIError(_("Several files must all be pictures: %(error)s", error=message_of(exc)), 415,
                               "unsupported_material") from None
        return datas
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "material"
        path.write_bytes(datas[0])
        try:
            kind = material.kind_of(path)
            if kind == "video":
                seconds = material.probe_video(path)[2]
                if seconds / material.EVERY_S > material.MAX_FRAMES:
                    raise material.TooLong(str(seconds))
        except material.TooLong:
            raise APIError(_("The video is too long: at most %(limit)d seconds.",
                             limit=int(material.MAX_FRAMES * material.EVERY_S)), 413, "material_too_long") from None
        except material.MaterialError:
            raise APIError(_("This is not a video, animated picture or picture the server can read."), 415,
                           "unsupported_material") from None
    if kind == "picture":
        imaging.open_image(datas[0], len(datas[0]) + 1, int(config["MAX_IMAGE_PIXELS"]))[1].close()
    elif kind == "animation":
        _check_animation(datas[0], int(config["MAX_IMAGE_PIXELS"]))
    return datas


def _check_animation(data, max_pixels):
    """An animated GIF, PNG or WebP within the pixel limit per frame and the frame limit: else 413/415."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ANIMATION_FORMATS) as image:
                width, height, frames = image.width, image.height, getattr(image, "n_frames", 1)
    except Image.DecompressionBombError:
        raise APIError(_("The image has more than %(limit)d pixels.", limit=max_pixels), 413,
                       "image_too_large") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise APIError(_("This is not a video, animated picture or picture the server can read."), 415,
                       "unsupported_material") from None
    if width * height > max_pixels:
        raise APIError(_("The image is %(width)dx%(height)d; at most %(limit)d pixels are accepted.",
                         width=width, height=height, limit=max_pixels), 413, "image_too_large")
    if frames > MAX_ANIMATION_FRAMES:
        raise APIError(_("The animation has %(frames)d frames; at most %(limit)d are accepted.", frames=frames,
                         limit=MAX_ANIMATION_FRAMES), 413, "material_too_long")


@bp.post("/api/teach")
@operator_required
def create():
    """Queue teaching from uploaded material -> 202 {"session", "job"} (follow the job at /api/jobs/<id>)."""
    app = _app()
    config = app.config
    request.max_content_length = int(config.get("TEACH_MAX_BYTES", DEFAULT_MAX_BYTES))  # before the body is read
    uploads = request.files.getlist("material")
    datas = _check_material(uploads, config)
    live.get_embedder()  # 503 now, not in the job, when the gallery's embedder is not installed
    job = store.create(app, "operator", "teach", len(datas), {}, {"client": 10**6,
                                                                  "queue": int(config["JOB_QUEUE_MAX"])})
    if isinstance(job, tuple):
        raise APIError(_("The job queue is full; try again later."), 503, "queue_full")
    try:
        with db.session(app, write=True) as s:
            session = teach_store.create(s, uploads[0].filename or "", job.id)
            key = session.key
        for index, data in enumerate(datas):
            files.put(app, job, teach_job.material_name(index), data)
        queue.enqueue(app, "teach", job.id)
    except BaseException as exc:
        files.remove(app, job)
        with db.session(app, write=True) as s:
            teach_store.remove_for_job(s, job.id)
        store.remove(app, job.id)
        if not isinstance(exc, queue.QueueUnavailable):
            raise
        raise APIError(_("The job queue is unavailable for now; try again later."), 503,
                       "queue_unavailable") from None
    response = jsonify({"session": key, "job": store.as_dict(store.get(app, job.id))})
    response.status_code = 202
    response.headers["Location"] = url_for("teach.show", key=key)
    return response


@bp.get("/api/teach")
@operator_required
def index():
    """Every teach session, newest first, with where it stands."""
    app = _app()
    teach_job.forget_cancelled(app)
    with db.session(app) as s:
        rows = teach_store.list_sessions(s)
    out = []
    for row in rows:
        status, job = teach_job.status_of(app, row)
        out.append({"id": row.key, "name": row.name, "status": status, "created": iso(row.created), "job": job})
    return jsonify({"sessions": out})


def _session(s, key):
    try:
        return teach_store.by_key(s, key)
    except teach_store.NotFound as exc:
        raise APIError(message_of(exc), 404, "not_found") from None


def _answers(groups):
    """What the app would answer today for each group: the top name of its typical faces, by majority."""
    try:
        identifier = live.get_identifier()
    except APIError:
        return
    gallery_now = live.get_gallery()
    root = _root()
    for group in groups:
        crops = []
        with db.session(_app()) as s:
            pictures = [images.read(s, root, sha256) for sha256 in group.pop("_typical_images")[:ANSWER_FACES]]
        for data in pictures:
            with Image.open(io.BytesIO(data)) as im:
                crops.append(im.convert("RGB"))
        if not crops:
            continue
        results = identifier.identify(crops, gallery=gallery_now)
        votes = {}
        for r in results:
            label = None if r["unknown"] or not r["predictions"] else r["predictions"][0]["label"]
            votes[label] = votes.get(label, 0) + 1
        label = max(votes, key=lambda k: (votes[k], k is not None))
        group["answer"] = {"label": label, "unknown": label is None, "agree": votes[label], "asked": len(crops)}


@bp.get("/api/teach/<key>")
@operator_required
def show(key):
    """A session: its groups (number, status, name, face and track counts, typical face ids, what the
    app answers for them today), the faces set aside, and its job while it runs."""
    app = _app()
    with db.session(app) as s:
        session = _session(s, key)
        body = teach_store.describe(s, session)
        for group in body["groups"]:
            group["_typical_images"] = [teach_store.face(s, session, i).image_sha256 for i in group["typical"]]
        body["status"], body["job"] = teach_job.status_of(app, session)
    open_groups = [g for g in body["groups"] if g["status"] != "discarded"]
    _answers(open_groups)
    for group in body["groups"]:
        group.pop("_typical_images", None)
    body["faces_url"] = url_for("teach.show", key=key) + "/faces/"
    return jsonify(body)


@bp.delete("/api/teach/<key>")
@operator_required
def remove(key):
    """Delete a session (what it enrolled stays in the gallery)."""
    with db.session(_app(), write=True) as s:
        teach_store.remove(s, _session(s, key))
    return jsonify({"id": key, "removed": True})


@bp.get("/api/teach/<key>/faces/<int:face_id>")
@operator_required
def face_image(key, face_id):
    """One face crop (PNG)."""
    with db.session(_app()) as s:
        try:
            sha256 = teach_store.face(s, _session(s, key), face_id).image_sha256
        except teach_store.NotFound as exc:
            raise APIError(message_of(exc), 404, "not_found") from None
        try:
            data = images.read(s, _root(), sha256)
        except (ValueError, FileNotFoundError):
            raise APIError(_("No such face in this teach session."), 404, "not_found") from None
    response = send_file(io.BytesIO(data), mimetype="image/png", max_age=3600)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.get("/api/teach/<key>/groups/<int:number>")
@operator_required
def group_faces(key, number):
    """Every face of a group, most typical first (dropped ones marked)."""
    with db.session(_app()) as s:
        try:
            return jsonify({"faces": teach_store.group_faces(s, _session(s, key), number)})
        except teach_store.NotFound as exc:
            raise APIError(message_of(exc), 404, "not_found") from None


def _act(key, action):
    """Run `action(session, s)` in a write transaction; 404 and 409 for the store's refusals."""
    app = _app()
    try:
        with db.session(app, write=True) as s:
            result = action(s, _session(s, key))
    except teach_store.NotFound as exc:
        raise APIError(message_of(exc), 404, "not_found") from None
    except teach_store.Conflict as exc:
        raise APIError(message_of(exc), 409, "conflict") from None
    return result


def _embedder_key():
    embedder = live.get_embedder(required=False)
    return embedder.key if embedder is not None else None


def _body():
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else request.form


@bp.post("/api/teach/<key>/groups/<int:number>/name")
@operator_required
def name_group(key, number):
    """Name a group {"name"}: a diverse handful of its faces enrolled under that character -> 200."""
    try:
        name = clean_label(str(_body().get("name", "")), field="name")
    except ReportError as exc:
        raise APIError(message_of(exc), 400, "bad_name") from None
    from app.web.characters import head_labels
    name = spelling_in(name, head_labels())  # "Lucy" joins the head's "lucy"
    embedder = _embedder_key()
    named, added = _act(key, lambda s, session: teach_store.name_group(s, _root(), session, number, name, embedder))
    return jsonify({"number": number, "name": named, "added": added})


@bp.post("/api/teach/<key>/groups/<int:number>/merge")
@operator_required
def merge(key, number):
    """Merge group `number` into {"into": other number}."""
    try:
        into = int(_body().get("into"))
    except (TypeError, ValueError):
        raise APIError(_("into must be the number of another group."), 400, "bad_option") from None
    embedder = _embedder_key()
    _act(key, lambda s, session: teach_store.merge(s, _root(), session, number, into, embedder))
    return jsonify({"number": number, "into": into, "merged": True})


@bp.post("/api/teach/<key>/groups/<int:number>/discard")
@operator_required
def discard(key, number):
    """Discard a group (extras, or no face at all)."""
    _act(key, lambda s, session: teach_store.discard(s, session, number))
    return jsonify({"number": number, "discarded": True})


@bp.post("/api/teach/<key>/faces/<int:face_id>/drop")
@operator_required
def drop(key, face_id):
    """Drop a face from its group ({"dropped": false} takes it back); an enrolled face leaves the gallery."""
    dropped = _body().get("dropped", True)
    dropped = dropped not in (False, "false", "0", 0)
    _act(key, lambda s, session: teach_store.drop_face(s, session, face_id, dropped))
    return jsonify({"id": face_id, "dropped": dropped})
