"""Real parts for the job tests: a private Redis server on loopback and `flask worker` processes."""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from servers import ROOT, free_port


def redis_binary():
    """Debian's redis-server (scripts/setup.sh --dev installs it), or None."""
    return shutil.which("redis-server")


def _ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """redis-server on 127.0.0.1:<port>, no persistence: restart() loses every message, as a Redis
    restarted without a save would."""

    def __init__(self, binary, folder):
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self):
        log = self.folder / "redis.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                          "--appendonly", "no", "--dir", str(self.folder), "--daemonize", "no"],
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not _ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self):
        self.stop()
        self.start()


@contextlib.contextmanager
def redis_server():
    """Start redis-server on 127.0.0.1:<free port> (no persistence, its own folder); yields the RedisServer."""
    binary = redis_binary()
    if binary is None:
        pytest.skip("redis-server missing: run scripts/setup.sh --dev (Debian's redis-server)")
    server = RedisServer(binary, Path(tempfile.mkdtemp(prefix="faces-redis-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


class Worker:
    """One `flask --app wsgi worker` process with the given FLASK_* settings."""

    def __init__(self, tmp_dir, env, name="worker"):
        self.log = Path(tmp_dir) / f"{name}-{time.monotonic_ns()}.log"
        full_env = {**os.environ, "FLASK_TORCH_THREADS": "1", **env}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT,
                                         env=full_env, stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def output(self):
        return self.log.read_text(errors="replace")

    def kill(self):
        """SIGKILL: the worker dies mid-job, with no chance to tidy up."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def worker(tmp_dir, env, name="worker"):
    """A running Worker, stopped at the end."""
    w = Worker(tmp_dir, env, name)
    try:
        yield w
    finally:
        w.stop()
