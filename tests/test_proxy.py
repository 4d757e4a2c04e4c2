"""Slow clients against gunicorn, with and without nginx in front (issue 16, defect 3).

gunicorn runs with the shipped gunicorn.conf.py (2 workers x 2 threads) and Debian's nginx with
deploy/nginx/nginx.conf, the file compose mounts, changed only in its listen port, upstream
address and /tmp paths. Everything is on loopback; each slow client uses its own 127.0.0.x
address, as distinct clients would, and the health checks come from 127.0.0.1.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT

from app.config import DEFAULTS

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
GUNICORN = Path(sys.executable).parent / "gunicorn"
# Four times gunicorn's 4 threads. They connect a quarter second apart: all at once, one
# worker would accept nearly all of them and the other stay free.
SLOW_CLIENTS = 16
ATTACK_SECONDS = 6     # well under client_header_timeout (10 s): nginx still holds every slow client
pytestmark = pytest.mark.skipif(not os.path.exists(NGINX),
                                reason="Debian's nginx is not installed: scripts/setup.sh --dev")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port, source="127.0.0.1", timeout=5):
    """The status of GET /healthz from `source`, or None when no answer came within `timeout`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def wait_for_health(port, process, log, seconds=60):
    deadline = time.monotonic() + seconds
    while healthz(port, timeout=2) != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no 200 from /healthz on port {port}:\n{Path(log).read_text()[-3000:]}")
        time.sleep(0.3)


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def workdir():
    # nginx's workers run as an unprivileged user when the test runs as root: they must be able
    # to reach their temporary files, which pytest's 0700 folders would not allow.
    path = Path(tempfile.mkdtemp(prefix="afd-proxy-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def gunicorn_port(workdir):
    """gunicorn as the image runs it (its config file, 2 workers x 2 threads) on loopback."""
    port = free_port()
    env = dict(os.environ, GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="2",
               GUNICORN_THREADS="2", FLASK_REPORT_DIR=str(workdir / "reports"),
               FLASK_TORCH_THREADS="1")
    log = workdir / "gunicorn.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(GUNICORN), "--config", "gunicorn.conf.py", "wsgi:app"],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_for_health(port, process, log)
    yield port
    stop(process)


def nginx_config(listen_port, upstream_port, tmp):
    """deploy/nginx/nginx.conf with this test's port, upstream and temporary paths."""
    text = NGINX_CONF.read_text()
    for old, new in [("server app:8000;", f"server 127.0.0.1:{upstream_port};"),
                     ("listen 8080;", f"listen 127.0.0.1:{listen_port};"),
                     ("/tmp/", f"{tmp}/")]:
        assert old in text, f"{NGINX_CONF} no longer holds {old!r}: update this test"
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def proxy_port(workdir, gunicorn_port):
    """Debian's nginx with the compose file's config, in front of gunicorn."""
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_config(port, gunicorn_port, workdir))
    log = workdir / "nginx.log"
    with open(log, "w") as out:
        process = subprocess.Popen([NGINX, "-e", "stderr", "-p", str(workdir), "-c", str(conf),
                                    "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT)
    wait_for_health(port, process, log)
    yield port
    stop(process)


class SlowClients:
    """Connections that each send a request one byte at a time, from their own 127.0.0.x.

    kind "header": the request line, then header bytes that never end the header.
    kind "body": a whole header announcing a 1 MB body, then the body a byte at a time.
    """

    def __init__(self, port, count, kind, first_address=10, interval=0.5, spacing=0.25):
        self.socks = []
        self.interval = interval
        self.stopped = threading.Event()
        self.closed_by_server = set()
        for i in range(count):
            sock = socket.socket()
            sock.bind((f"127.0.0.{first_address + i}", 0))
            sock.connect(("127.0.0.1", port))
            if kind == "header":
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
            else:
                sock.sendall(b"POST /api/reports HTTP/1.1\r\nHost: slow\r\n"
                             b"Content-Type: multipart/form-data; boundary=x\r\n"
                             b"Content-Length: 1000000\r\n\r\n")
            self.socks.append(sock)
            time.sleep(spacing)
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self):
        while not self.stopped.wait(self.interval):
            for i, sock in enumerate(self.socks):
                if i in self.closed_by_server:
                    continue
                try:
                    sock.sendall(b"a")
                except OSError:
                    self.closed_by_server.add(i)

    def wait_until_closed_by_server(self, seconds):
        """Keep trickling until the server has closed every connection (or `seconds` pass)."""
        deadline = time.monotonic() + seconds
        while len(self.closed_by_server) < len(self.socks) and time.monotonic() < deadline:
            for i, sock in enumerate(self.socks):
                sock.setblocking(False)
                try:
                    if sock.recv(4096) == b"":
                        self.closed_by_server.add(i)
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed_by_server.add(i)
            time.sleep(0.5)
        return len(self.closed_by_server)

    def close(self):
        self.stopped.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def health_during(port, seconds):
    """(answered with 200, asked): one /healthz a second for `seconds`, 5 s allowed for each."""
    answered = asked = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        asked += 1
        answered += healthz(port) == 200
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    return answered, asked


def report(capsys, text):
    with capsys.disabled():
        print(f"\n    [proxy] {text}")


@pytest.mark.parametrize("kind", ["header", "body"])
def test_slow_clients_cannot_starve_gunicorn_behind_nginx(kind, proxy_port, gunicorn_port, capsys):
    clients = SlowClients(proxy_port, SLOW_CLIENTS, kind)
    try:
        answered, asked = health_during(proxy_port, ATTACK_SECONDS)
        still_held = SLOW_CLIENTS - len(clients.closed_by_server)
    finally:
        clients.close()
    report(capsys, f"{SLOW_CLIENTS} slow-{kind} clients through nginx: "
                   f"{answered}/{asked} health checks answered; nginx still held {still_held} of them")
    assert still_held == SLOW_CLIENTS, "the slow clients were dropped, so this proved nothing"
    assert asked >= 3 and answered == asked


@pytest.mark.parametrize("kind", ["header", "body"])
def test_the_same_slow_clients_starve_gunicorn_alone(kind, gunicorn_port, capsys):
    """The control: straight to gunicorn, the same clients hold every thread (the attack is real)."""
    clients = SlowClients(gunicorn_port, SLOW_CLIENTS, kind)
    try:
        answered, asked = health_during(gunicorn_port, 2 * ATTACK_SECONDS)
    finally:
        clients.close()
    report(capsys, f"{SLOW_CLIENTS} slow-{kind} clients straight to gunicorn: "
                   f"{answered}/{asked} health checks answered")
    # Checks starve here that nginx answered every time. How many varies from run to run (0/3 to
    # 7/8 seen): which worker accepts each connection, and when, is the kernel's and gunicorn's
    # choice. The claim is only that the attack costs answers without the proxy.
    assert asked >= 3 and answered < asked
    # Once they are gone, gunicorn answers again (the threads were only waiting on them).
    deadline = time.monotonic() + 30
    while healthz(gunicorn_port) != 200:
        assert time.monotonic() < deadline, "gunicorn did not recover after the slow clients left"


def test_nginx_drops_a_header_that_never_ends(proxy_port):
    """client_header_timeout: nginx closes a connection whose header is not whole in time."""
    clients = SlowClients(proxy_port, 2, "header", first_address=40)
    try:
        assert clients.wait_until_closed_by_server(seconds=40) == 2
    finally:
        clients.close()


def test_connections_per_client_are_limited(proxy_port, capsys):
    """limit_conn: one address holding 10 requests gets 429 for more; other addresses do not."""
    limit = int(re.search(r"limit_conn per_client (\d+);", NGINX_CONF.read_text()).group(1))
    # Slow bodies count as requests in progress (their header is whole); all from 127.0.0.50.
    socks = []
    try:
        for _ in range(limit):
            sock = socket.create_connection(("127.0.0.1", proxy_port), source_address=("127.0.0.50", 0))
            sock.sendall(b"POST /api/reports HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            socks.append(sock)
        time.sleep(0.5)  # nginx has read those headers
        assert healthz(proxy_port, source="127.0.0.50") == 429
        conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=5,
                                          source_address=("127.0.0.50", 0))
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()
        assert response.status == 429 and body["error"]["code"] == "too_many_requests"
        assert healthz(proxy_port, source="127.0.0.1") == 200
    finally:
        for sock in socks:
            sock.close()
    report(capsys, f"one address: {limit} requests in progress, the next answered 429 (JSON); "
                   "another address: 200")


def test_body_limit_equals_the_apps(proxy_port, workdir):
    """client_max_body_size is the app's MAX_CONTENT_LENGTH: one byte more, and nginx answers 413
    in JSON from the header alone and closes the connection (gunicorn never sees the request);
    a body under the limit reaches the app, which judges what is in it."""
    size = re.search(r"client_max_body_size (\d+)m;", NGINX_CONF.read_text()).group(1)
    limit = int(size) * 1024 * 1024
    assert limit == DEFAULTS["MAX_CONTENT_LENGTH"]
    gunicorn_log = workdir / "gunicorn.log"
    seen_before = gunicorn_log.read_text().count("POST /api/cutout")

    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=30)
    conn.putrequest("POST", "/api/cutout")
    conn.putheader("Content-Type", "multipart/form-data; boundary=b")
    conn.putheader("Content-Length", str(limit + 1))
    conn.endheaders()
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413 and body["error"]["code"] == "too_large"
    assert response.getheader("Connection") == "close"

    # One byte under the limit: one file part that is not a picture; the app reads it and says
    # so. (At exactly the limit nginx passes the body on and the app, under gunicorn, answers its
    # own 413: its limit counts one byte fewer.)
    head = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")
    tail = b"\r\n--b--\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=60)
    conn.request("POST", "/api/cutout", body=head + b"x" * (limit - 1 - len(head) - len(tail)) + tail,
                 headers={"Content-Type": "multipart/form-data; boundary=b"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 415 and body["error"]["code"] == "unsupported_type", body
    time.sleep(0.5)  # gunicorn writes its access log line after answering
    assert gunicorn_log.read_text().count("POST /api/cutout") == seen_before + 1
