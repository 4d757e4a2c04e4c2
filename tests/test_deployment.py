"""The multi-machine deployment, on loopback: Debian's nginx (the compose file's config) in front of
two gunicorn app instances, two `flask worker`s, Redis and PostgreSQL. Every process has its own
empty report folder: nothing is shared but the database and the queue, as on separate machines.

Shown: a character enrolled on web 1 is named by web 2; a job submitted to web 2 runs on a worker
and its result is served by web 1; a worker killed mid-job leaves its job to the other worker;
Redis restarted mid-run loses no acknowledged job; through nginx, requests reach both instances."""
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import urllib3
from conftest import ROOT, encode, needs_models
from queue_support import redis_server, worker
from servers import free_port, gunicorn, wait_healthy
from sqlalchemy import select

from app import create_app
from app.storage import db
from app.storage.models import Job

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
TOKEN = "deployment-test-token-of-forty-chars!!"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = [needs_models, pytest.mark.skipif(not Path(NGINX).exists(), reason="Debian's nginx is not installed")]


def pictures(n, side, seed):
    rng = np.random.default_rng(seed)
    return [encode(rng.integers(0, 255, (side, side, 3), np.uint8)) for _ in range(n)]


def nginx(workdir, upstreams):
    """Debian's nginx with deploy/nginx/nginx.conf, its upstream the given loopback ports; (port, process)."""
    text = NGINX_CONF.read_text()
    port = free_port()
    servers = " ".join(f"server 127.0.0.1:{p};" for p in upstreams)
    for old, new in [("server app:8000;", servers), ("listen 8080;", f"listen 127.0.0.1:{port};"),
                     ("/tmp/", f"{workdir}/")]:
        assert old in text, f"{NGINX_CONF} no longer holds {old!r}: update this test"
        text = text.replace(old, new)
    (workdir / "nginx.conf").write_text(text)
    with open(workdir / "nginx.log", "wb") as log:
        process = subprocess.Popen([NGINX, "-e", "stderr", "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
                                    "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT)
    return port, process


def job_of(app, key):
    with db.session(app) as s:
        return s.scalar(select(Job).where(Job.key == key))


def wait_job(http, url, key, until, seconds=180):
    deadline = time.monotonic() + seconds
    while True:
        job = http.request("GET", f"{url}/api/jobs/{key}", timeout=10).json()["job"]
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job stuck: {job}"
        time.sleep(0.2)


def test_two_web_instances_two_workers_redis_and_postgresql_behind_nginx(tmp_path, postgres):
    workdir = Path(tempfile.mkdtemp(prefix="afd-deploy-"))
    workdir.chmod(0o755)  # nginx's workers (unprivileged when the test runs as root) reach their files
    database_url = postgres()
    http = urllib3.PoolManager(retries=False)
    try:
        with redis_server() as redis:
            shared = {"FLASK_DATABASE_URL": database_url, "FLASK_JOB_QUEUE_URL": redis.url,
                      "FLASK_ADMIN_TOKEN": TOKEN, "FLASK_CUTOUT_MODEL": "demo-cutout",
                      "FLASK_JOB_LEASE_SECONDS": "4", "FLASK_JOB_CLIENT_ACTIVE": "5", "FLASK_PROXY_FIX": "true"}

            def own(name):
                return {**shared, "FLASK_REPORT_DIR": str(tmp_path / name)}

            access = ["--access-logfile", "-"]
            with gunicorn(tmp_path, own("web1"), workers=1, args=access) as (web1, log1), \
                    gunicorn(tmp_path, own("web2"), workers=1, args=access) as (web2, log2), \
                    worker(tmp_path, own("worker1"), "worker1") as w1, \
                    worker(tmp_path, own("worker2"), "worker2") as w2:
                ports = [int(u.rsplit(":", 1)[1]) for u in (web1, web2)]
                proxy_port, proxy = nginx(workdir, ports)
                proxy_url = f"http://127.0.0.1:{proxy_port}"
                wait_healthy(proxy_url, proxy, workdir / "nginx.log")
                reader = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "reader"),
                                     "DATABASE_URL": database_url})
                try:
                    # 1. Enrolled on web 1, named by web 2.
                    a, b = pictures(2, 80, seed=1)
                    fields = [("name", "probe"), ("faces", ("a.png", a)), ("faces", ("b.png", b))]
                    enrolled = http.request("POST", web1 + "/api/characters", headers=AUTH, fields=fields)
                    assert enrolled.status == 201, enrolled.data
                    named = http.request("POST", web2 + "/api/identify", fields={"faces": ("b.png", b)}).json()
                    assert named["faces"][0]["predictions"][0]["label"] == "probe"

                    # 2. Submitted to web 2, run by a worker, served by web 1.
                    sent = http.request("POST", web2 + "/api/jobs?output=mask",
                                        fields=[("images", (f"{i}.png", p)) for i, p in enumerate(pictures(2, 160, 2))])
                    assert sent.status == 202, sent.data
                    key = sent.json()["job"]["id"]
                    done = wait_job(http, web1, key, lambda j: j["status"] not in ("queued", "running"))
                    assert done["status"] == "done", (w1.output()[-2000:], w2.output()[-2000:])
                    assert http.request("GET", web1 + done["results"][0]["url"], timeout=10).status == 200

                    # 3. A worker killed mid-job: the other takes it up (the reaper sees the lease run out).
                    fields = [("images", (f"{i}.png", p)) for i, p in enumerate(pictures(10, 640, 3))]
                    sent = http.request("POST", web1 + "/api/jobs?output=mask", fields=fields)
                    key = sent.json()["job"]["id"]
                    wait_job(http, web2, key, lambda j: j["status"] == "running" and j["done"] >= 1, 120)
                    holder = job_of(reader, key).worker
                    victim, survivor = (w1, w2) if f"|{w1.pid}|" in holder else (w2, w1)
                    assert f"|{victim.pid}|" in holder, holder
                    victim.kill()
                    done = wait_job(http, web2, key, lambda j: j["status"] not in ("queued", "running"), 240)
                    assert done["status"] == "done" and done["attempts"] == 2, (done, survivor.output()[-3000:])
                    assert len(done["results"]) == 10

                    # 4. Redis restarted mid-run (no persistence: its messages are gone); every job a
                    # client was told about (202) still ends done.
                    keys = []
                    for n in range(3):
                        sent = http.request("POST", proxy_url + "/api/jobs?output=mask",
                                            fields={"images": ("p.png", pictures(1, 200, 10 + n)[0])})
                        assert sent.status == 202, sent.data
                        keys.append(sent.json()["job"]["id"])
                    redis.restart()
                    for key in keys:
                        done = wait_job(http, proxy_url, key, lambda j: j["status"] not in ("queued", "running"), 240)
                        assert done["status"] == "done", (done, survivor.output()[-3000:])

                    # 5. Through nginx, both instances answer.
                    for _ in range(12):
                        assert http.request("GET", proxy_url + "/api/characters", timeout=10).status == 200
                    assert all("GET /api/characters" in Path(log).read_text(errors="replace") for log in (log1, log2))
                finally:
                    db.dispose(reader)
                    proxy.terminate()
                    proxy.wait(timeout=20)
    finally:
        http.clear()
        shutil.rmtree(workdir, ignore_errors=True)
    for name in ("web1", "web2", "worker1", "worker2"):  # nothing of any job on any machine's disk
        assert not list((tmp_path / name).glob("jobs/batch/*")), name
        assert not list((tmp_path / name).glob("images/*/*.png")), name
