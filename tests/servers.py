"""Real servers for tests, on 127.0.0.1 only: gunicorn running the app."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import urllib3

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, proc, log, timeout=60, ready=True):
    """Poll url/healthz until it answers 200 (or 503, not ready, when `ready` is False); fail the
    test with the server's log if it never does."""
    deadline = time.time() + timeout
    while True:
        try:
            # A fresh connection each time, closed at once: an idle keep-alive connection would
            # hold a gthread worker's shutdown for its whole grace period.
            with urllib3.PoolManager(retries=False) as http:
                status = http.request("GET", url + "/healthz", timeout=2).status
            if status in ((200,) if ready else (200, 503)):
                return
        except urllib3.exceptions.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"server did not start:\n{Path(log).read_text(errors='replace')[-4000:]}")
        time.sleep(0.3)


@contextlib.contextmanager
def gunicorn(tmp_dir, env=None, workers=1, args=(), ready=True):
    """Run `gunicorn wsgi:app` on a free loopback port; yields (url, log path). ready=False: start
    serving as soon as /healthz answers at all (a test of a server that is not ready).

    Its output goes to a file (a pipe nobody reads would block it once full), and it is stopped
    with SIGTERM, which lets workers finish and exit at once when idle.
    """
    port = free_port()
    log = Path(tmp_dir) / f"gunicorn-{port}.log"
    full_env = dict(os.environ, FLASK_TORCH_THREADS="1", **(env or {}))
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(GUNICORN), "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
                                 "--timeout", "120", *args, "wsgi:app"], cwd=ROOT, env=full_env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, ready=ready)
        yield url, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
