"""Batch cutouts as jobs (app/jobs/): submit pictures, follow progress, download results, cancel.

Anyone may submit (like /api/cutout); a job is reached only through its unguessable id, so nobody
else can read or cancel it. Submissions are checked here, before anything is queued: pictures
recognised by content, within the byte and pixel limits, the same options /api/cutout takes, and
the per-client and per-queue limits (429 and 503 with Retry-After).
"""
import io
import json
import re

from flask import Blueprint, current_app, jsonify, request, send_file, url_for

from app.errors import APIError
from app.i18n import Message, _, translate
from app.inference import imaging
from app.jobs import cutouts, files, queue, store
from app.serving import registry
from app.web.options import background_colour, cutout_options, switch
from app.web.ratelimit import client_key

bp = Blueprint("jobs", __name__, url_prefix="/api/jobs")

CLIENT_RETRY_AFTER = 10  # seconds: a job of this client will likely have moved on by then
QUEUE_RETRY_AFTER = 30
NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _app():
    return current_app._get_current_object()


def _busy(message, status, code, seconds):
    err = APIError(message, status, code)
    err.headers["Retry-After"] = str(seconds)
    return err


def _options():
    output = request.args.get("output", "image")
    if output not in ("image", "mask"):
        raise APIError(_("output must be 'image' or 'mask'."), 400, "bad_output")
    options = {"output": output, **cutout_options(request.args),
               "decontaminate": switch(request.args, "decontaminate", "1"),
               "background": background_colour(request.args, output)}
    model = request.args.get("model") or None
    if model is not None and model != registry.model_path_name(_app(), "cutout") \
            and model not in registry.cutout_models(_app()):
        registry.get_cutter(model)  # raises the same 400 unknown_model as /api/cutout
    options["model"] = model
    return options


def _safe_name(filename):
    """A client's file name, reduced to something harmless inside a ZIP (or empty)."""
    stem = (filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    return NAME_CHARS.sub("_", stem).strip("._")[:60]


def _read_pictures(config):
    """The uploaded pictures' bytes, each recognised and within limits (nothing decoded yet)."""
    uploads = request.files.getlist("images")
    most = int(config["JOB_MAX_PICTURES"])
    if not uploads:
        raise APIError(_("Send one or more pictures under the field 'images'."), 400, "missing_file")
    if len(uploads) > most:
        raise APIError(_("At most %(limit)d pictures per job; %(sent)d were sent.", limit=most,
                         sent=len(uploads)), 413, "too_many_pictures")
    budget, total, pictures = int(config["JOB_MAX_PIXELS"]), 0, []
    per_file = int(config["JOB_MAX_BYTES"])
    for upload in uploads:
        data = imaging.read_upload(upload, per_file)
        _fmt, image = imaging.open_image(data, per_file, int(config["MAX_IMAGE_PIXELS"]))
        total += image.width * image.height
        image.close()
        if total > budget:
            raise APIError(_("The pictures of this job add up to more than %(limit)d pixels; send fewer or "
                             "smaller pictures.", limit=budget), 413, "job_too_large")
        pictures.append((data, _safe_name(upload.filename)))
    return pictures


def _job_body(job):
    body = store.as_dict(job, lambda index: url_for("jobs.result", job_id=job.key, index=index))
    if job.reason:
        reason = json.loads(job.reason)
        body["message"] = translate(Message(reason["msgid"], reason.get("params") or {}))
    if job.status == "done" and job.kind == "cutout":  # a teach job's outcome is its teach session
        sticker = json.loads(job.result or "{}").get("animation")
        if sticker:  # an animated picture's job (app/jobs/stickers.py): one file
            body["sticker"] = {**sticker, "url": url_for("jobs.sticker", job_id=job.key)}
        else:
            body["zip"] = url_for("jobs.results_zip", job_id=job.key)
    return body


@bp.post("")
def create():
    """Queue a batch of cutouts: multipart `images` (1 to JOB_MAX_PICTURES), /api/cutout's query
    options -> 202 {"job"} with its id and Location."""
    app = _app()
    config = app.config
    request.max_content_length = int(config["JOB_MAX_BYTES"])  # before the body is read
    options = _options()
    pictures = _read_pictures(config)
    options["names"] = [name for _data, name in pictures]
    return submit(app, [data for data, _name in pictures], len(pictures), options)


def submit(app, inputs, pictures, options):
    """Queue a cutout job of `inputs` (bytes as sent, stored as in/NNNN) counting `pictures` units of
    progress -> the 202 response with its Location; 429/503 with Retry-After when limits stop it."""
    config = app.config
    limits = {"client": int(config["JOB_CLIENT_ACTIVE"]), "queue": int(config["JOB_QUEUE_MAX"])}
    job = store.create(app, client_key(), "cutout", pictures, options, limits)
    if isinstance(job, tuple):
        which, count = job
        if which == "client":
            raise _busy(_("You have %(count)d jobs queued or running (at most %(limit)d); wait for one to "
                          "finish.", count=count, limit=limits["client"]), 429, "too_many_jobs", CLIENT_RETRY_AFTER)
        raise _busy(_("The job queue is full; try again later."), 503, "queue_full", QUEUE_RETRY_AFTER)
    try:
        for index, data in enumerate(inputs):
            files.put(app, job, f"in/{cutouts.picture_name(index)}", data)
        queue.enqueue(app, "cutout", job.id)
    except BaseException as exc:
        files.remove(app, job)
        store.remove(app, job.id)
        if not isinstance(exc, queue.QueueUnavailable):
            raise  # disk or database full -> 507, unreachable -> 503, through the app's storage errors
        current_app.logger.error("%s", exc)
        raise _busy(_("The job queue is unavailable for now; try again later."), 503, "queue_unavailable",
                    QUEUE_RETRY_AFTER) from None
    response = jsonify({"job": _job_body(store.get(app, job.id))})
    response.status_code = 202
    response.headers["Location"] = url_for("jobs.show", job_id=job.key)
    return response


def _job_or_404(job_id):
    job = store.by_key(_app(), job_id)
    if job is None:
        raise APIError(_("No such job."), 404, "not_found")
    return job


@bp.get("/<job_id>")
def show(job_id):
    """A job's state, progress and, once done, where its results are."""
    app = _app()
    job = _job_or_404(job_id)
    if job.status == "running" and cutouts.reap(app, only=job.id):
        job = store.get(app, job.id)  # its worker was gone: queued again or failed, said here at once
    if store.is_expired(job):
        raise APIError(_("This job's results have expired or were deleted."), 410, "expired")
    return jsonify({"job": _job_body(job)})


@bp.delete("/<job_id>")
def cancel(job_id):
    """Cancel a queued or running job, or delete a finished job's results now."""
    app = _app()
    job = _job_or_404(job_id)
    store.cancel(app, job)
    return jsonify({"job": _job_body(store.get(app, job.id))})


def _finished(job_id):
    job = _job_or_404(job_id)
    if store.is_expired(job):
        raise APIError(_("This job's results have expired or were deleted."), 410, "expired")
    if job.status != "done":
        raise APIError(_("This job has no results (it is %(status)s).", status=job.status), 409, "not_done")
    return job


@bp.get("/<job_id>/results.zip")
def results_zip(job_id):
    """Every result of a finished job in one ZIP."""
    job = _finished(job_id)
    return _send(job, cutouts.ZIP_NAME, "application/zip", f"cutouts-{job.key}.zip")


@bp.get("/<job_id>/sticker")
def sticker(job_id):
    """The cutout of an animated picture (animated WebP, APNG, GIF or ZIP, as asked)."""
    job = _finished(job_id)
    sticker = json.loads(job.result or "{}").get("animation")
    if not sticker:
        raise APIError(_("No such job."), 404, "not_found")
    return _send(job, sticker["name"], sticker["mimetype"], f"sticker-{job.key}.{sticker['name'].rsplit('.', 1)[1]}")


@bp.get("/<job_id>/results/<int:index>")
def result(job_id, index):
    """One picture's result (PNG), by its place in the submission (0-based)."""
    job = _finished(job_id)
    if not 0 <= index < job.pictures:
        raise APIError(_("No such job."), 404, "not_found")
    name = f"{cutouts.picture_name(index)}.png"
    return _send(job, f"out/{name}", "image/png", name)


def _send(job, name, mimetype, download_name):
    """A stored file of a finished job: streamed from the report folder, or from its database row."""
    app = _app()
    if not files.in_database(app):
        path = files.folder(app, job.key) / name
        if path.is_file():
            return send_file(path, mimetype=mimetype, download_name=download_name, max_age=0)
    data = files.get(app, job, name)
    if data is None:
        raise APIError(_("This job's results have expired or were deleted."), 410, "expired")
    return send_file(io.BytesIO(data), mimetype=mimetype, download_name=download_name, max_age=0)
