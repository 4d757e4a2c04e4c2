"""The operator's side: the review queue of reports, retraining with progress, model versions.

Everything here needs an operator (app/web/auth.py). Accepting a report puts its face in the
gallery under its label (or a corrected one), so the name is answered at once; retraining runs
as a separate process that writes its progress to the database and makes the new head live
only when its held-out figures are not worse than the live one's.
"""
import io
import os

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, send_file, url_for

from app.config import resolve_path
from app.errors import APIError
from app.i18n import _, message_of
from app.jobs import queue
from app.serving import live
from app.storage import db, images, job_lock, model_versions
from app.storage import reports as report_store
from app.storage.models import Job
from app.web import auth
from app.web.auth import operator_required

bp = Blueprint("review", __name__)

PAGE_SIZE = 50
MAX_PAGE = 500


def _app():
    return current_app._get_current_object()


def _root():
    return resolve_path(current_app.config["REPORT_DIR"])


@bp.get("/review")
def page():
    """The review page (operators; others are sent to sign in, which says how when it is turned off)."""
    if not auth.is_signed_in():
        return redirect(url_for("auth.signin", next=request.full_path.rstrip("?")), code=303)
    return auth.operator_page(render_template("review.html"))


def _int_arg(name, default, lo, hi):
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        raise APIError(_("%(name)s must be a whole number.", name=name), 400, "bad_option") from None
    return min(max(value, lo), hi)


@bp.get("/api/reports")
@operator_required
def list_reports():
    """Reports, oldest first: ?status=pending|accepted|rejected, ?limit, ?offset; with counts per status."""
    status = request.args.get("status") or None
    if status is not None and status not in report_store.STATUSES:
        raise APIError(_("status must be one of: %(choices)s.", choices=", ".join(report_store.STATUSES)),
                       400, "bad_option")
    limit = _int_arg("limit", PAGE_SIZE, 1, MAX_PAGE)
    offset = _int_arg("offset", 0, 0, 10**9)
    with db.session(_app()) as s:
        rows = report_store.list_reports(s, status, limit, offset)
        counts = {st: report_store.count(s, st) for st in report_store.STATUSES}
        used = report_store.pending_bytes(s)
    return jsonify({"reports": [report_store.as_dict(r) for r in rows], "counts": counts,
                    "pending_bytes": used, "quota_bytes": current_app.config.get("REPORT_QUOTA_BYTES")})


@bp.get("/api/reports/<report_id>/image")
@operator_required
def report_image(report_id):
    """The report's face crop (PNG)."""
    with db.session(_app()) as s:
        try:
            sha256 = report_store.get(s, report_id).image_sha256
        except report_store.NotFound as exc:
            raise APIError(message_of(exc), 404, "not_found") from None
        try:
            data = images.read(s, _root(), sha256)  # crops are small: read whole, no file left open
        except FileNotFoundError:
            data = None
    if data is None:
        raise APIError(_("The picture of this report is missing on the server."), 404, "not_found") from None
    response = send_file(io.BytesIO(data), mimetype="image/png")
    # An operator's picture: never kept by a shared cache (or the browser's disk) for anyone else.
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _decide(report_id, accept):
    body = request.get_json(silent=True)
    label = request.form.get("label") or (body.get("label") if isinstance(body, dict) else None) or None
    if label is not None and not isinstance(label, str):
        raise APIError(_("The corrected name must be text."), 400, "bad_label")
    app = _app()
    try:
        with db.session(app, write=True) as s:
            report = report_store.decide(s, _root(), report_id, accept, label)
            body = report_store.as_dict(report)
    except report_store.NotFound as exc:
        raise APIError(message_of(exc), 404, "not_found") from None
    except report_store.ReportError as exc:
        code = "already_decided" if "already" in str(exc) else "bad_label"
        raise APIError(message_of(exc), 409 if code == "already_decided" else 400, code) from None
    if accept:
        live.get_gallery()  # embed the new face now, in this worker, not in the next identify
    return jsonify(body)


@bp.post("/api/reports/<report_id>/accept")
@operator_required
def accept(report_id):
    """Accept a report (optional `label` corrects it): its face joins the gallery under that name."""
    return _decide(report_id, True)


@bp.post("/api/reports/<report_id>/reject")
@operator_required
def reject(report_id):
    """Reject a report: it leaves the queue and is never used."""
    return _decide(report_id, False)


# --- models and retraining ---------------------------------------------------------------------

@bp.get("/api/classifiers")
@operator_required
def models():
    """Classifier versions trained here, newest first, and which directory serves now."""
    app = _app()
    with db.session(app) as s:
        versions = [model_versions.as_dict(v) for v in model_versions.history(s)]
    job = active_job(app, "retrain")
    job = model_versions.job_dict(job) if job else None
    live_dir = live.classifier_dir()
    return jsonify({"versions": versions, "active_job": job,
                    "serving": "retrained version" if live_dir else "configured model (FLASK_CLASSIFIER_MODEL)"})


@bp.post("/api/classifiers/rollback")
@operator_required
def rollback():
    """Go back one version (to the previous retrained one, or the configured model)."""
    with db.session(_app(), write=True) as s:
        try:
            old, now = model_versions.rollback(s)
        except model_versions.NothingToRollBack as exc:
            raise APIError(message_of(exc), 409, "nothing_to_roll_back") from None
        body = {"rolled_back": model_versions.as_dict(old),
                "live": model_versions.as_dict(now) if now else None}
    return jsonify(body)


def active_job(app, kind):
    """The running job of `kind`, or None; the rows of jobs whose process died are marked failed."""
    with db.session(app) as s:
        row = model_versions.latest_job(s, kind)
    if row is None or row.status == "queued" or job_lock.is_held(_root(), kind):  # probe after the read
        return row
    with db.session(app, write=True) as s:
        model_versions.fail_dead_jobs(s, kind, row.id)
    return None


@bp.post("/api/classifiers/retrain")
@operator_required
def retrain():
    """Queue retraining the head on the gallery plus the existing data -> 202 {"job"}; one at a time.

    A worker (`flask worker`, app/jobs/retrain.py) runs it. One at a time is the job lock
    (app/storage/job_lock.py): held here for the instant of the check, then by the running job's
    process, so a job that is queued or running refuses a second one (409)."""
    app = _app()
    try:
        lock_fd = job_lock.acquire(_root(), "retrain", wait_s=0.5)  # 0.5 s: a status probe's instant
    except job_lock.Busy:
        with db.session(app) as s:
            running = model_versions.latest_job(s, "retrain")
        if running is None:
            raise APIError(_("A retraining job is already running."), 409, "job_running") from None
        raise APIError(_("A retraining job is already running (job %(job)d).", job=running.id), 409,
                       "job_running") from None
    try:
        with db.session(app, write=True) as s:
            latest = model_versions.latest_job(s, "retrain")
            if latest is not None and latest.status == "running":  # we hold the lock: its process is gone
                model_versions.fail_dead_jobs(s, "retrain", latest.id)
                latest = None
            waiting = latest.id if latest is not None else None
            job_id = waiting if waiting is not None else model_versions.create_job(s, "retrain").id
        try:
            # A waiting job is put on the queue again: a message lost with a queue (Redis restarted)
            # must not leave it waiting for ever; the worker claims a job only once.
            queue.enqueue(app, "retrain", job_id)
        except queue.QueueUnavailable as exc:
            current_app.logger.error("%s", exc)
            if waiting is None:
                with db.session(app, write=True) as s:
                    model_versions.update_job(s, job_id, status="failed",
                                              message="The job queue could not be reached.")
            err = APIError(_("The job queue is unavailable for now; try again later."), 503, "queue_unavailable")
            err.headers["Retry-After"] = "30"
            raise err from None
    finally:
        os.close(lock_fd)
    if waiting is not None:
        raise APIError(_("A retraining job is already running (job %(job)d).", job=waiting), 409, "job_running")
    with db.session(app) as s:
        body = model_versions.job_dict(s.get(Job, job_id))
    return jsonify({"job": body}), 202


@bp.get("/api/jobs/<int:job_id>")
@operator_required
def job(job_id):
    """A job's status and progress (0-1)."""
    app = _app()
    with db.session(app) as s:
        row = s.get(Job, job_id) if job_id < 2**31 else None  # ids are 32-bit in the schema
        if row is None:
            raise APIError(_("No job %(job)d.", job=job_id), 404, "not_found")
    if row.status in ("queued", "running") and not job_lock.is_held(_root(), row.kind):
        with db.session(app, write=True) as s:
            model_versions.fail_dead_jobs(s, row.kind, row.id)
            row = s.get(Job, job_id)
    return jsonify({"job": model_versions.job_dict(row)})

