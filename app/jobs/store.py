"""Queued jobs' rows and files, and every change of their state, each one a conditional update.

A row moves queued -> running -> done | failed, or to cancelled from queued or running; done and
failed become expired when their results are deleted. Every move is an UPDATE ... WHERE on the
state it leaves (and, for a running job, on the worker that runs it), so a worker, a client's
DELETE and the reaper can race without two of them winning. Pictures and results are kept by
app/jobs/files.py.
"""
import datetime
import json
import os
import secrets
import socket
from pathlib import Path

from sqlalchemy import func, select, update

from app.jobs import files
from app.storage import db, transactions
from app.storage.models import Job, iso, utcnow

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed")
_SERIALISE_KEY = 7_140_300  # advisory lock: per-client counts checked and a row added, in turn


def new_key():
    """A public job id nobody can guess (others' jobs cannot be read or cancelled)."""
    return "j" + secrets.token_urlsafe(18)


def _process_start(pid):
    """The start time of process `pid` in clock ticks since boot (tells a reused pid apart), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return None


def worker_id():
    """This process as a worker: "host|pid|start"."""
    return f"{socket.gethostname()}|{os.getpid()}|{_process_start(os.getpid())}"


def worker_alive(worker):
    """True/False for a worker on this machine (its process checked), None for one elsewhere."""
    try:
        host, pid, start = worker.split("|")
    except (AttributeError, ValueError):
        return False
    if host != socket.gethostname():
        return None
    return pid.isdigit() and _process_start(int(pid)) == start


def create(app, client, kind, pictures, options, limits):
    """Add a queued row unless a limit stops it; returns the Job, or ("client"|"queue", count)."""
    with db.session(app, write=True) as s:
        transactions.serialise(s, _SERIALISE_KEY)
        mine = s.scalar(select(func.count()).select_from(Job).where(Job.client == client,
                                                                    Job.status.in_(ACTIVE)))
        if mine >= limits["client"]:
            return ("client", mine)
        queued = s.scalar(select(func.count()).select_from(Job).where(Job.key.is_not(None),
                                                                      Job.status == "queued"))
        if queued >= limits["queue"]:
            return ("queue", queued)
        job = Job(kind=kind, status="queued", key=new_key(), client=client, pictures=pictures,
                  options=json.dumps(options), message="Waiting for a worker.")
        s.add(job)
        s.flush()
        return job


def remove(app, job_id):
    """Delete a row that never reached the queue."""
    with db.session(app, write=True) as s:
        job = s.get(Job, job_id)
        if job is not None:
            s.delete(job)


def by_key(app, key):
    """The row of public id `key`, or None."""
    if not key or len(key) > 40:
        return None
    with db.session(app) as s:
        return s.scalar(select(Job).where(Job.key == key))


def get(app, job_id):
    """The row `job_id`, or None."""
    with db.session(app) as s:
        return s.get(Job, job_id)


def _move(app, job_id, where, **values):
    """One conditional state change; True when this caller made it."""
    values.setdefault("updated", utcnow())
    with db.session(app, write=True) as s:
        done = s.execute(update(Job).where(Job.id == job_id, *where).values(**values))
        return done.rowcount == 1


def reason_json(message):
    """A Message (msgid + params) as stored in `reason`, so each client reads it in its language."""
    params = getattr(message, "params", None) or {}
    return json.dumps({"msgid": getattr(message, "msgid", str(message)),
                       "params": {k: (v if isinstance(v, (int, float)) else str(v)) for k, v in params.items()}},
                      ensure_ascii=False)


def claim(app, job_id, worker):
    """queued -> running on `worker` (one more attempt); False if it is not queued any more."""
    return _move(app, job_id, [Job.status == "queued"], status="running", worker=worker, heartbeat=utcnow(),
                 attempts=Job.attempts + 1, message="Running.")


def progress(app, job_id, worker, done, total, message=None):
    """Record pictures done (or `message` for other work); False when the job is no longer this
    worker's (cancelled, reaped)."""
    return _move(app, job_id, [Job.status == "running", Job.worker == worker], done=done,
                 progress=done / max(1, total), heartbeat=utcnow(),
                 message=message or f"{done} of {total} pictures done.")


def still_mine(app, job_id, worker):
    """True while the job is running on `worker`."""
    with db.session(app) as s:
        return s.scalar(select(func.count()).select_from(Job).where(
            Job.id == job_id, Job.status == "running", Job.worker == worker)) == 1


def finish(app, job_id, worker, result, keep_seconds):
    """running -> done with `result`; results kept `keep_seconds`."""
    expires = utcnow() + datetime.timedelta(seconds=keep_seconds)
    return _move(app, job_id, [Job.status == "running", Job.worker == worker], status="done", progress=1.0,
                 result=json.dumps(result, ensure_ascii=False), expires=expires, message="Done.")


def give_up_or_retry(app, job, where, code, message, retries, keep_seconds):
    """After a failed attempt: back to queued while attempts remain (True), else failed with the
    reason (False); None when another party moved the job first."""
    if job.attempts <= retries:
        moved = _move(app, job.id, where, status="queued", worker=None, code=code, reason=reason_json(message),
                      message=f"Attempt {job.attempts} failed ({message}); it will run again.")
        return True if moved else None
    expires = utcnow() + datetime.timedelta(seconds=keep_seconds)
    moved = _move(app, job.id, where, status="failed", code=code, reason=reason_json(message),
                  message=f"Failed after {job.attempts} attempt(s): {message}", expires=expires)
    return False if moved else None


def cancel(app, job):
    """A client's DELETE: queued or running -> cancelled; finished -> expired (results deleted now).
    True when this call changed the job."""
    if job.status in ACTIVE:
        moved = _move(app, job.id, [Job.status == job.status], status="cancelled", expires=utcnow(),
                      message="Cancelled by the client.")
        if moved and job.status == "queued":
            files.remove(app, job)  # no worker writes there
        return moved  # a running job's worker sees the change and removes its files
    if job.status in FINISHED:
        moved = _move(app, job.id, [Job.status == job.status], status="expired", expires=None,
                      message="Its results were deleted by the client.")
        if moved:
            files.remove(app, job)
        return moved
    return False


def lost_jobs(app, lease_seconds):
    """Running rows whose worker is gone: its process dead (on this machine), or no heartbeat for the
    lease (anywhere: a live worker that dropped the job, say after losing the database, counts too)."""
    horizon = utcnow() - datetime.timedelta(seconds=lease_seconds)
    with db.session(app) as s:
        running = list(s.scalars(select(Job).where(Job.status == "running", Job.key.is_not(None))))
    lost = []
    for job in running:
        alive = worker_alive(job.worker)
        heartbeat = job.heartbeat.replace(tzinfo=datetime.UTC) if job.heartbeat and not job.heartbeat.tzinfo \
            else job.heartbeat
        if alive is False or heartbeat is None or heartbeat < horizon:
            lost.append(job)
    return lost


def stranded_jobs(app, older_than_s):
    """Queued rows (batch cutouts, retraining, teaching) unchanged for `older_than_s`: waiting in a long
    queue, or their message lost (a Redis restarted without persistence); the caller tells which."""
    horizon = utcnow() - datetime.timedelta(seconds=older_than_s)
    with db.session(app) as s:
        rows = list(s.scalars(select(Job).where(Job.status == "queued", Job.kind.in_(("cutout", "retrain", "teach")))))
    return [job for job in rows if _aware(job.updated) < horizon]


def touch(app, job_id):
    """Mark a queued job as just looked at (its message put back); False if it is not queued now."""
    return _move(app, job_id, [Job.status == "queued"])


def expired_jobs(app):
    """Rows whose results' time is up (done, failed, cancelled), with files still to delete."""
    now = utcnow()
    with db.session(app) as s:
        rows = list(s.scalars(select(Job).where(Job.key.is_not(None), Job.expires.is_not(None),
                                                Job.status.in_(("done", "failed", "cancelled")))))
    return [job for job in rows if _aware(job.expires) <= now]


def _aware(moment):
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment


def is_expired(job):
    """True when a finished job's results are past their time (whether or not the sweep ran)."""
    return job.status == "expired" or (job.status in FINISHED and job.expires is not None
                                       and _aware(job.expires) <= utcnow())


def purge(app, job):
    """Delete an expired job's files; done/failed rows become expired, cancelled ones stay cancelled."""
    files.remove(app, job)
    status = "expired" if job.status in FINISHED else job.status
    _move(app, job.id, [Job.status == job.status], status=status, expires=None)


def heartbeat(app, job_ids, worker):
    """Say `worker` still runs these jobs."""
    if job_ids:
        with db.session(app, write=True) as s:
            s.execute(update(Job).where(Job.id.in_(list(job_ids)), Job.worker == worker,
                                        Job.status == "running").values(heartbeat=utcnow()))


def as_dict(job, url_for_result=None):
    """The public JSON form of a queued job (English message; the view translates `reason`)."""
    result = json.loads(job.result or "{}")
    body = {"id": job.key, "kind": job.kind, "status": job.status, "progress": round(job.progress or 0.0, 4),
            "pictures": job.pictures, "done": job.done, "attempts": job.attempts, "message": job.message,
            "created": iso(job.created), "updated": iso(job.updated), "expires": iso(job.expires)}
    if job.code:
        body["code"] = job.code
    if job.status == "done" and url_for_result:
        body["results"] = [{**item, "url": url_for_result(item["index"])} for item in result.get("pictures", [])]
    return body
