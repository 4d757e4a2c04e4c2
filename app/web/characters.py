"""Characters the server can answer: the head's labels and the gallery's enrolled characters.

GET /api/characters (in api.py) lists them for anyone; POST (enrol faces, appending to an existing name) and DELETE are
for operators. An enrolment stores the pictures, their embeddings and the new gallery
version in one transaction, so every worker answers the new name on its next request.
"""
import hashlib
import io

from flask import Blueprint, current_app, jsonify, request, send_file, url_for

from app.config import resolve_path
from app.errors import APIError
from app.i18n import _, message_of
from app.inference import imaging
from app.serving import live
from app.storage import db, gallery, images
from app.storage.labels import LabelError, name_key, spelling_in
from app.web.auth import operator_required

bp = Blueprint("characters", __name__, url_prefix="/api")


def gallery_names(identifier):
    """(every name the server can answer, [{"name", "source": head|gallery|both, "faces"}]); names equal
    under labels.name_key are one, in the head's spelling (or the first enrolled one)."""
    with db.session(current_app._get_current_object()) as s:
        counts = gallery.face_counts(s)
    spelling = {name_key(n): n for n in reversed(sorted(counts))}
    spelling.update({name_key(n): n for n in identifier.labels})
    head = {name_key(n) for n in identifier.labels}
    faces = {}
    for n, k in counts.items():
        faces[name_key(n)] = faces.get(name_key(n), 0) + k
    keys = sorted(spelling)  # by the folded name: "TOM" sorts among the t
    details = [{"name": spelling[k], "faces": faces.get(k, 0),
                "source": "both" if k in head and k in faces else "head" if k in head else "gallery"} for k in keys]
    return [d["name"] for d in details], details


def head_labels():
    """The live head's labels, or none when no head can be loaded (enrolment works without it)."""
    try:
        return live.get_identifier().labels
    except APIError:
        return []


@bp.post("/characters")
@operator_required
def enrol():
    """Enrol one or more face pictures under `name` -> 201 {"name", "faces"} (faces: enrolled in all)."""
    app = current_app._get_current_object()
    uploads = request.files.getlist("faces")
    if not uploads:
        raise APIError(_("Send one or more face pictures under the field 'faces'."), 400, "missing_file")
    limit = int(app.config["MAX_FACES"])
    if len(uploads) > limit:
        raise APIError(_("At most %(limit)d faces per request; %(sent)d were sent.", limit=limit, sent=len(uploads)),
                       400, "too_many_faces")
    try:
        name = gallery.clean_label(request.form.get("name", ""), field="name")
    except LabelError as exc:
        raise APIError(message_of(exc), 400, "bad_name") from None
    name = spelling_in(name, head_labels())  # "Lucy" joins the head's "lucy": one character, one spelling
    pictures = [imaging.flatten(imaging.decode_upload(u, app.config)) for u in uploads]
    embedder = live.get_embedder()  # 503 before anything is stored when the gallery cannot work
    vectors = embedder.from_images(pictures)
    pngs = [imaging.png_bytes(p) for p in pictures]  # re-encoded: no foreign bytes kept
    with db.session(app, write=True) as s:
        character, added = gallery.enrol(s, resolve_path(app.config["REPORT_DIR"]), name, pngs)
        by_sha = {hashlib.sha256(png).hexdigest(): vector for png, vector in zip(pngs, vectors)}
        gallery.put_embeddings(s, embedder.key, {f.id: by_sha[f.image_sha256].astype("<f4").tobytes()
                                                 for f in added})
        total = gallery.face_count(s, character)
    return jsonify({"name": character.name, "faces": total, "added": len(added)}), 201


@bp.delete("/characters/<path:name>")
@operator_required
def remove(name):
    """Remove a name (and its enrolled faces) from the gallery; the head's labels stay."""
    try:
        with db.session(current_app._get_current_object(), write=True) as s:
            removed = gallery.remove(s, name)
    except LabelError as exc:
        raise APIError(message_of(exc), 400, "bad_name") from None
    if not removed:
        raise APIError(_("No character %(name)s in the gallery.", name=repr(name)), 404, "not_found")
    return jsonify({"name": name, "removed": True})


MAX_LISTED_FACES = 500


@bp.get("/gallery/faces")
@operator_required
def faces():
    """?name=: a character's enrolled faces (the first MAX_LISTED_FACES), each with its picture's address.
    (Not under /api/characters/<name>/: a name may hold "/", so that address would be ambiguous.)"""
    name = request.args.get("name", "")
    try:
        with db.session(current_app._get_current_object()) as s:
            listed = gallery.faces_of(s, name, MAX_LISTED_FACES)
    except LabelError as exc:
        raise APIError(message_of(exc), 400, "bad_name") from None
    if listed is None:
        raise APIError(_("No character %(name)s in the gallery.", name=repr(name)), 404, "not_found")
    return jsonify({"name": name, "faces": [
        {"id": face_id, "source": source, "url": url_for("characters.face_image", face_id=face_id)}
        for face_id, _sha, source in listed]})


@bp.get("/gallery/faces/<int:face_id>")
@operator_required
def face_image(face_id):
    """One enrolled face (PNG)."""
    data = None
    with db.session(current_app._get_current_object()) as s:
        sha256 = gallery.face_sha256(s, face_id)
        if sha256:
            try:
                data = images.read(s, resolve_path(current_app.config["REPORT_DIR"]), sha256)
            except FileNotFoundError:
                pass
    if data is None:
        raise APIError(_("No such face in the gallery."), 404, "not_found")
    response = send_file(io.BytesIO(data), mimetype="image/png", max_age=3600)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
