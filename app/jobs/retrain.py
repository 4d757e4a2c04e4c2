"""Retraining as a queued job: a worker takes the retrain lock (app/storage/job_lock.py), claims the
job's row and runs `flask train classifier --from-gallery --job N` as its child, handing it the lock.

The lock keeps today's guarantees: one retraining at a time (a shell retrain included), and a dead
one never blocks the next, because the kernel drops the lock when its last holder exits. The
child trains in its own process, so torch's memory goes back when it ends; if the worker is
killed, the child finishes the job by itself; if the child is killed, the worker marks the job
failed at once.
"""
import logging
import os
import subprocess
import sys

from app.config import ROOT, model_path, resolve_path
from app.jobs import queue, store
from app.storage import db, job_lock, model_versions
from app.storage.models import Job

log = logging.getLogger(__name__)
LOCK_WAIT_S = 5.0  # a web request holds the lock only for an instant while it queues a job
BUSY_RETRY_S = 10  # a retraining started from a shell is running: look again this much later
DIED = "The job's process died before it finished."


def job_env(app):
    """The settings a job process needs, as FLASK_* variables (the app may have been configured in code)."""
    config = app.config
    env = dict(os.environ)
    env.update({
        "FLASK_REPORT_DIR": str(resolve_path(config["REPORT_DIR"])),
        "FLASK_DATABASE_URL": db.database_url(config),
        "FLASK_MODEL_DIR": str(resolve_path(config["MODEL_DIR"])),
        "FLASK_CLASSIFIER_MODEL": str(model_path(config, "CLASSIFIER_MODEL")),
        "FLASK_EMBEDDING_MODEL": str(model_path(config, "EMBEDDING_MODEL")),
    })
    for key in ("RETRAIN_DATA_DIR", "TORCH_THREADS"):
        if config.get(key) is not None:
            env[f"FLASK_{key}"] = str(config[key])
    return env


def run(app, job_id):
    """Run queued retrain job `job_id` (a Huey task's body); never raises into the queue."""
    with app.app_context():
        root = resolve_path(app.config["REPORT_DIR"])
        try:
            lock_fd = job_lock.acquire(root, "retrain", wait_s=LOCK_WAIT_S)
        except job_lock.Busy:
            try:
                queue.enqueue(app, "retrain", job_id, delay=BUSY_RETRY_S)
            except queue.QueueUnavailable as exc:  # the next retrain request queues it again
                log.error("%s", exc)
            return
        try:
            if store.claim(app, job_id, store.worker_id()):
                _train(app, root, job_id, lock_fd)
        finally:
            os.close(lock_fd)  # after the row says how the job ended: no gap a probe could misread


def _train(app, root, job_id, lock_fd):
    log_path = root / "jobs" / f"retrain-{job_id}.log"
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "train", "classifier", "--from-gallery",
               "--job", str(job_id)]
    try:
        with open(log_path, "ab") as out:
            child = subprocess.Popen(command, cwd=ROOT, env={**job_env(app), job_lock.ENV_FD: str(lock_fd)},
                                     pass_fds=(lock_fd,), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT)
        os.pwrite(lock_fd, f"{child.pid}\n".encode(), 0)  # the holder, for operators (the job rewrites it)
        child.wait()
    except OSError as exc:
        log.error("retrain job %s could not start: %s", job_id, exc)
    with db.session(app, write=True) as s:
        row = s.get(Job, job_id)
        if row is not None and row.status in ("queued", "running"):  # it ended without saying how
            model_versions.update_job(s, job_id, status="failed", message=DIED)
