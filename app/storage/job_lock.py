"""One background job of a kind at a time, held by the live process that runs it.

The lock is an OS lock (flock) on `<REPORT_DIR>/jobs/<kind>.lock`: the kernel drops it the moment
its holder exits, however it exits (kill -9 included), so a dead job never blocks the next one
and no timestamp has to guess. The web request that queues a job holds it for an instant while it
checks that no job is queued or running; the queue worker that runs the job (app/jobs/retrain.py)
takes it before claiming the job's row and hands its descriptor to the job's process
(FLASK_JOB_LOCK_FD), so a running job's lock is held without a gap until the job ends. Every
instance of the app shares the report folder (pictures live there), so the lock covers several
instances on SQLite or PostgreSQL alike.
"""
import fcntl
import os
import time
from pathlib import Path

ENV_FD = "FLASK_JOB_LOCK_FD"


class Busy(RuntimeError):
    """Another live process holds the lock."""


def lock_path(root, kind):
    """The lock file of job `kind` under the report folder `root`."""
    return Path(root) / "jobs" / f"{kind}.lock"


def acquire(root, kind, wait_s=0.0):
    """Take the lock of `kind` (retrying up to `wait_s` seconds); its descriptor, or Busy."""
    path = lock_path(root, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise Busy(f"{path} is held by process {holder_pid(root, kind) or '?'}") from None
            time.sleep(0.02)


def hold(root, kind):
    """For the job's own process: the lock handed down by the web worker (FLASK_JOB_LOCK_FD), or a
    fresh one (a shell); Busy when another live process holds it. Records this pid in the file."""
    inherited = os.environ.pop(ENV_FD, None)
    fd = None
    if inherited and inherited.isdigit():
        try:
            fd = int(inherited)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # our own description: succeeds at once
            os.set_inheritable(fd, False)
        except OSError:
            fd = None
    if fd is None:
        fd = acquire(root, kind)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def holder_pid(root, kind):
    """The pid the holder recorded, or None (nobody recorded one)."""
    try:
        text = lock_path(root, kind).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_held(root, kind):
    """True while a live process holds the lock (probed by taking it for an instant)."""
    try:
        fd = acquire(root, kind)
    except Busy:
        return True
    os.close(fd)
    return False
