"""Teaching a cast as a queued job: the material (a video, an animated picture or pictures) becomes
face tracks and groups (app/teach/pipeline.py), written into the job's teach session whole.

Progress goes to the job's row; between frames the worker checks that the job is still its own,
so a cancel (DELETE /api/jobs/<id>) stops it at the next frame. Nothing of a job is written before
it finishes: a cancelled or failed job leaves its session without groups (and its material goes).
A shell's `flask teach PATH` runs the same body in its own process on a file it names.
"""
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from app.config import resolve_path
from app.errors import APIError
from app.i18n import _, message_of
from app.jobs import cutouts, files, store
from app.storage import db
from app.storage.models import Job, TeachSession
from app.teach import material, pipeline
from app.teach import store as teach_store

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 1.0  # row updates at most this often (and each one checks for a cancel)
FRAMES_SHARE = 0.8  # of the progress bar: frames and tracks; the rest is embedding


def material_name(index):
    return f"in/{index:04d}"


def run(app, job_id):
    """Run queued teach job `job_id` (a Huey task's body); never raises into the queue."""
    with app.app_context():
        me = store.worker_id()
        if not store.claim(app, job_id, me):
            _abandon(app, job_id)  # cancelled while queued: its session goes too
            return
        with cutouts._running_lock:
            cutouts._running.add(job_id)
        try:
            attempt(app, job_id, me)
        finally:
            with cutouts._running_lock:
                cutouts._running.discard(job_id)


def attempt(app, job_id, me, path=None, on_progress=None):
    """One attempt at job `job_id` claimed by `me`; `path` is local material (the shell's), else the
    job's uploaded files. Returns the final status ("done", "failed", "cancelled", "retry")."""
    job = store.get(app, job_id)
    work = Path(tempfile.mkdtemp(prefix="teach-"))
    try:
        # A shell's job names its material on this machine (only `flask teach` sets options.path).
        path = path or json.loads(job.options or "{}").get("path")
        source = Path(path) if path else _unpack(app, job, work)
        result, seconds = _process(app, job, me, source, on_progress)
        if result is None:
            return _abandon(app, job_id)
        return _write(app, job, me, result, seconds)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the job's reason
        if not store.still_mine(app, job_id, me):
            return _abandon(app, job_id)
        if isinstance(exc, material.MaterialError):
            code, message, retries = "bad_material", _("The material could not be read: %(error)s",
                                                       error=str(exc)), 0
        elif isinstance(exc, APIError):
            code, message, retries = exc.code, message_of(exc), 0 if exc.status < 500 else 1
        else:
            log.exception("teach job %s failed", job_id)
            code, message = "teach_failed", _("Teaching failed on the server (%(error)s).", error=type(exc).__name__)
            retries = int(app.config["JOB_RETRIES"])
        job = store.get(app, job_id)
        again = store.give_up_or_retry(app, job, [Job.status == "running", Job.worker == me], code, message,
                                       retries, int(app.config["JOB_RESULT_SECONDS"]))
        if again:
            cutouts._requeue(app, job, delay=cutouts.retry_delay(job.attempts))
            return "retry"
        _set_status(app, job_id, "failed")
        files.remove(app, job)
        return "failed"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _unpack(app, job, work):
    """The job's uploaded material as local files: the one file itself, or a folder of pictures."""
    names = sorted(files.sizes(app, job, "in/"))
    if not names:
        raise FileNotFoundError(f"teach job {job.id}: its material is missing")
    if len(names) == 1:
        target = work / "material"
        target.write_bytes(files.get(app, job, names[0]))
        return target
    folder = work / "pictures"
    folder.mkdir()
    for name in names:
        (folder / f"{name.rsplit('/', 1)[-1]}.png").write_bytes(files.get(app, job, name))
    return folder


def _process(app, job, me, source, on_progress):
    from app.serving import live
    embedder = live.get_embedder()
    last = [0.0]
    started = time.monotonic()

    def progress(stage, done, total):
        if on_progress is not None:
            on_progress(stage, done, total)
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and done < total:
            return True
        last[0] = now
        share = FRAMES_SHARE * done / total if stage == "frames" else FRAMES_SHARE + (1 - FRAMES_SHARE) * done / total
        what = f"{done} of about {total} frames read." if stage == "frames" else f"{done} of {total} faces embedded."
        return store.progress(app, job.id, me, round(999 * min(1.0, share)), 1000, message=what)

    result = pipeline.run(source, embedder, on_progress=progress)
    if result.stopped or not store.still_mine(app, job.id, me):
        return None, 0.0
    return result, time.monotonic() - started


def _write(app, job, me, result, seconds):
    from app.serving import live
    root = resolve_path(app.config["REPORT_DIR"])
    stats = {"frames": result.frames, "tracks": result.tracks, "faces": len(result.faces), "groups": result.groups,
             "set_aside": sum(1 for f in result.faces if f.group < 0), "seconds": round(seconds, 1)}
    with db.session(app, write=True) as s:
        # The check and the write in one transaction: a cancel that came first leaves nothing written.
        row = s.get(Job, job.id)
        if row is None or row.status != "running" or row.worker != me:
            return _abandon(app, job.id)
        session = s.scalar(select(TeachSession).where(TeachSession.job_id == job.id))
        if session is None:
            return _abandon(app, job.id)
        teach_store.store_result(s, root, session, result, live.get_embedder().key, stats)
        key = session.key
    if not store.finish(app, job.id, me, {"session": key, **stats}, int(app.config["JOB_RESULT_SECONDS"])):
        return _abandon(app, job.id)
    files.remove(app, job, "in/")
    return "done"


def _set_status(app, job_id, status):
    with db.session(app, write=True) as s:
        session = s.scalar(select(TeachSession).where(TeachSession.job_id == job_id))
        if session is not None and session.status == "processing":
            session.status = status


def _abandon(app, job_id):
    """The job stopped being ours (cancelled): its session and material go, nothing half-written stays."""
    job = store.get(app, job_id)
    if job is not None and job.status == "cancelled":
        files.remove(app, job)
        with db.session(app, write=True) as s:
            teach_store.remove_for_job(s, job_id)
        return "cancelled"
    return "lost"


def status_of(app, session):
    """(the session's status, its job's public state or None). A session whose job failed where no
    attempt could say so (the reaper gave up on it) reads "failed"."""
    job = store.get(app, session.job_id) if session.job_id is not None else None
    if job is None:
        return session.status, None
    status = session.status
    if status == "processing" and job.status in ("failed", "cancelled", "expired"):
        status = "failed"
    body = {"id": job.key, "status": job.status, "progress": round(job.progress or 0.0, 3),
            "message": job.message}
    return status, body


def forget_cancelled(app):
    """Delete the sessions of jobs cancelled before any worker took them (no worker will)."""
    with db.session(app, write=True) as s:
        rows = s.execute(select(TeachSession.id, Job.status).join(Job, TeachSession.job_id == Job.id).where(
            TeachSession.status == "processing", Job.status == "cancelled")).all()
        for session_id, _status in rows:
            s.delete(s.get(TeachSession, session_id))
