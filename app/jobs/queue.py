"""The queue: Huey on a SQLite file in the report folder by default, on Redis when JOB_QUEUE_URL
names one (several machines).

Huey only carries "run job N" messages and schedules retries; the state a client sees (status,
progress, attempts, who runs it) lives in the job's database row (app/jobs/store.py). That is why
a message lost with a killed worker loses nothing: the row says the job was running on a worker
that is gone, and the reaper puts it back on the queue or fails it with a reason.
"""
import os
import threading

from app.config import resolve_path

QUEUE_NAME = "anime-face-jobs"
SQLITE_NAME = "queue.sqlite3"  # under <REPORT_DIR>/jobs/

_lock = threading.Lock()


class QueueUnavailable(RuntimeError):
    """The queue could not take a message (Redis down, the SQLite file unwritable)."""


def _make_huey(app):
    from huey import RedisHuey, SqliteHuey
    url = app.config.get("JOB_QUEUE_URL")
    if url:
        if not str(url).startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"JOB_QUEUE_URL must be a redis:// URL, not {url!r}")
        # results=False: nothing reads Huey's result store; the job row holds the outcome.
        return RedisHuey(QUEUE_NAME, url=str(url), results=False)
    folder = resolve_path(app.config["REPORT_DIR"]) / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(folder / SQLITE_NAME), results=False, timeout=30)


def get(app):
    """This process's (huey, {kind: task}) for `app`, built on first use (after any fork)."""
    state = app.extensions.get("job_queue")
    if state is None or state["pid"] != os.getpid():
        with _lock:
            state = app.extensions.get("job_queue")
            if state is None or state["pid"] != os.getpid():
                from app.jobs import cutouts, retrain, teach
                huey = _make_huey(app)
                tasks = {"cutout": huey.task(name="cutout")(lambda job_id: cutouts.run(app, job_id)),
                         "retrain": huey.task(name="retrain")(lambda job_id: retrain.run(app, job_id)),
                         "teach": huey.task(name="teach")(lambda job_id: teach.run(app, job_id))}
                state = {"pid": os.getpid(), "huey": huey, "tasks": tasks}
                app.extensions["job_queue"] = state
    return state["huey"], state["tasks"]


def enqueue(app, kind, job_id, delay=None):
    """Put "run job `job_id`" on the queue (after `delay` seconds); QueueUnavailable when it cannot."""
    try:
        _huey, tasks = get(app)
        if delay:
            tasks[kind].schedule(args=(job_id,), delay=delay)
        else:
            tasks[kind](job_id)
    except Exception as exc:  # redis.ConnectionError, sqlite3.OperationalError, ...: all mean "not taken"
        raise QueueUnavailable(f"the job queue did not take job {job_id}: {exc}") from exc


def describe(app):
    """Where the queue lives, for logs (a Redis URL without its password)."""
    url = app.config.get("JOB_QUEUE_URL")
    if not url:
        return f"SQLite {resolve_path(app.config['REPORT_DIR']) / 'jobs' / SQLITE_NAME}"
    from urllib.parse import urlsplit
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def waiting_job_ids(app):
    """Ids of the jobs with a message on the queue now (waiting, or scheduled for a retry)."""
    huey, _tasks = get(app)
    return {task.args[0] for task in [*huey.pending(), *huey.scheduled()] if task.args}
