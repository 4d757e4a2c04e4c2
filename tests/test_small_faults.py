"""Issue 28's smaller points (item 8): an operator-only picture is never cached publicly, leftover
temporary files below the report folder's top level are cleaned at start, HEAD /signin cannot sign
in around the CSRF check, and a form field past its limit is told its own limit."""
import io
import os
import re
import time

import numpy as np
from conftest import encode

from app import create_app
from app.storage import db, files, reports

TOKEN = "small-faults-token-long-enough-for-the-rule"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make(tmp_path, **config):
    return create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "reports"), "ADMIN_TOKEN": TOKEN, **config})


def test_a_report_picture_is_never_cached_by_shared_caches(tmp_path):
    app = make(tmp_path)
    with db.session(app, write=True) as s:
        report, _ = reports.submit(s, tmp_path / "reports", encode(np.zeros((8, 8, 3), np.uint8)), "lucy")
    response = app.test_client().get(f"/api/reports/{report.id}/image", headers=AUTH)
    assert response.status_code == 200
    cache = response.headers["Cache-Control"]
    assert "public" not in cache and "private" in cache and "no-store" in cache
    db.dispose(app)


def test_stale_temporary_files_below_the_top_level_are_removed_at_start(tmp_path):
    root = tmp_path / "reports"
    left = [root / "images" / "ab" / f"{files.TMP_PREFIX}x.png", root / "models" / f"{files.TMP_PREFIX}y",
            root / "jobs" / f"{files.TMP_PREFIX}z.log", root / f"{files.TMP_PREFIX}top"]
    fresh = root / "images" / "cd" / f"{files.TMP_PREFIX}being-written.png"
    for path in [*left, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    old = time.time() - 3600
    for path in left:
        os.utime(path, (old, old))
    make(tmp_path)
    assert [p for p in left if p.exists()] == []
    assert fresh.exists()  # a live writer's file (younger than a minute) stays


def csrf_of(html):
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_head_signin_never_signs_in(tmp_path):
    app = make(tmp_path)
    client = app.test_client()
    # HEAD with the form a cross-site page could send: no CSRF token, the right operator token.
    response = client.open("/signin", method="HEAD", data={"token": TOKEN})
    assert response.status_code == 200
    assert client.get("/api/classifiers").status_code == 401  # no session came of it (before: 303, signed in)


def test_a_form_field_past_its_limit_is_told_its_own_limit(tmp_path):
    app = make(tmp_path, MAX_FORM_MEMORY_SIZE=1000)
    face = encode(np.zeros((8, 8, 3), np.uint8))
    response = app.test_client().post("/api/reports", data={"face": (io.BytesIO(face), "f.png"), "label": "x" * 5000})
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "too_large"
    message = response.get_json()["error"]["message"]
    assert "1000" in message and str(16 * 1024 * 1024) not in message


def test_a_forged_forwarded_for_from_outside_the_proxy_is_ignored(monkeypatch, tmp_path):
    from flask import request
    monkeypatch.setenv("FLASK_PROXY_FIX", "1")
    app = make(tmp_path, REPORT_RATE_LIMIT="3 per minute")
    app.add_url_rule("/whoami", "whoami", lambda: {"addr": request.remote_addr})
    direct = app.test_client()
    direct.environ_base["REMOTE_ADDR"] = "203.0.113.9"  # reached gunicorn around the proxy
    assert direct.get("/whoami", headers={"X-Forwarded-For": "6.6.6.6"}).get_json() == {"addr": "203.0.113.9"}
    statuses = []
    for k in range(5):  # a new forged address each time: before, every one was a fresh client
        face = encode(np.full((8, 8, 3), k, np.uint8))
        statuses.append(direct.post("/api/reports", data={"face": (io.BytesIO(face), "f.png"), "label": "x"},
                                    headers={"X-Forwarded-For": f"198.51.100.{k}"}).status_code)
    assert statuses == [201, 201, 201, 429, 429]
    proxied = app.test_client()  # from the proxy (loopback): its one hop is trusted as before
    assert proxied.get("/whoami", headers={"X-Forwarded-For": "6.6.6.6"}).get_json() == {"addr": "6.6.6.6"}
    db.dispose(app)


def test_the_host_header_must_be_one_this_server_answers_for(tmp_path):
    app = make(tmp_path, ALLOWED_HOSTS="faces.example.org, .example.net")
    client = app.test_client()
    for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "faces.example.org",
                 "a.example.net", "example.net"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("rebind.attacker.example", "faces.example.org.attacker.example", "example.org"):
        response = client.post("/api/reports", headers={"Host": host})
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_host", host
