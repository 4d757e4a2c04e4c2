"""Faults the server must survive (issue 28): the database gone or locked, the disk full.

Real parts only: the real app, SQLite files, a private PostgreSQL stopped and restarted mid-run,
and the report folder on a real 4 MB tmpfs (mounted here; skipped where mounting is refused).
Every step is bounded in time: the database timeout is set to a second or two.
"""
import io
import os
import sqlite3
import time

import numpy as np
import pytest
from conftest import encode, needs_classifier, needs_cutout, tmpfs
from PIL import Image

from app import create_app
from app.inference import imaging
from app.storage import db, images, reports

TOKEN = "t" * 40


def upload(data, name="picture.png"):
    return (io.BytesIO(data), name)


def noise_png(seed, side=200):
    """A picture that does not compress (about 120 KB as PNG at 200 px)."""
    return encode(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def assert_error(response, status, code):
    assert response.status_code == status, response.data
    assert response.get_json()["error"]["code"] == code
    if status == 503:
        assert int(response.headers["Retry-After"]) >= 1


def stored_reports(app):
    with db.session(app) as s:
        return reports.count(s)


def temp_files(folder):
    return [p for p in folder.rglob(".tmp-*")]


# ---------- the database unavailable: 503 storage_unavailable with Retry-After ----------
@needs_cutout
def test_an_unopenable_sqlite_database_answers_503_and_cutout_keeps_working(tmp_path):
    root = tmp_path / "reports"
    (root / db.SQLITE_NAME).mkdir(parents=True)  # a folder where the database file should be
    app = create_app({"TESTING": True, "REPORT_DIR": str(root), "CUTOUT_MODEL": "demo-cutout",
                      "TORCH_THREADS": 1})
    client = app.test_client()
    assert_error(client.post("/api/reports", data={"face": upload(noise_png(1, 20)), "label": "lucy"}),
                 503, "storage_unavailable")
    health = client.get("/healthz")
    body = health.get_json()
    assert body["storage"]["ok"] is False and body["status"] in ("degraded", "not_ready")
    assert any("database" in reason for reason in body["reasons"])
    cut = client.post("/api/cutout", data={"image": upload(noise_png(2, 64))})
    assert cut.status_code == 200 and cut.mimetype == "image/png"
    (root / db.SQLITE_NAME).rmdir()  # the operator repairs it: no restart needed
    assert client.post("/api/reports", data={"face": upload(noise_png(1, 20)), "label": "lucy"}).status_code == 201
    assert client.get("/healthz").get_json()["storage"]["ok"] is True


def test_a_locked_sqlite_database_answers_503_in_bounded_time(tmp_path):
    root = tmp_path / "reports"
    app = create_app({"TESTING": True, "REPORT_DIR": str(root), "DATABASE_TIMEOUT": 1})
    client = app.test_client()
    assert client.post("/api/reports", data={"face": upload(noise_png(1, 20)), "label": "lucy"}).status_code == 201
    holder = sqlite3.connect(root / db.SQLITE_NAME, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        started = time.monotonic()
        response = client.post("/api/reports", data={"face": upload(noise_png(2, 20)), "label": "lucy"})
        assert time.monotonic() - started < 10
        assert_error(response, 503, "storage_unavailable")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.post("/api/reports", data={"face": upload(noise_png(2, 20)), "label": "lucy"}).status_code == 201
    assert stored_reports(app) == 2
    db.dispose(app)


def test_storage_errors_are_translated(tmp_path):
    root = tmp_path / "reports"
    (root / db.SQLITE_NAME).mkdir(parents=True)
    client = create_app({"TESTING": True, "REPORT_DIR": str(root)}).test_client()
    english = client.post("/api/reports", data={"face": upload(noise_png(1, 20)), "label": "x"})
    japanese = client.post("/api/reports", data={"face": upload(noise_png(1, 20)), "label": "x"},
                           headers={"Accept-Language": "ja"})
    assert english.get_json()["error"]["code"] == japanese.get_json()["error"]["code"] == "storage_unavailable"
    assert english.get_json()["error"]["message"] != japanese.get_json()["error"]["message"]


def test_a_lost_connection_an_exhausted_pool_or_a_busy_counter_file_is_storage_unavailable():
    from sqlalchemy.exc import DBAPIError, ProgrammingError, TimeoutError

    from app.errors import storage_error
    lost = DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)
    import sqlite3
    for exc in (lost, TimeoutError("QueuePool limit reached"), sqlite3.OperationalError("database is locked")):
        assert storage_error(exc).status == 503 and storage_error(exc).headers["Retry-After"]
    assert storage_error(ProgrammingError("SELECT nonsense", {}, Exception("syntax error"))) is None


@needs_classifier
def test_postgresql_stopped_and_restarted_mid_run(tmp_path):
    """Reports answer 503 with Retry-After while it is down, identify keeps answering from what the
    worker holds, /healthz says degraded; all recover by themselves once it is back."""
    from postgres import binaries, postgres_server
    if binaries() is None:
        pytest.skip("PostgreSQL binaries missing")
    with postgres_server() as databases:
        app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "reports"), "DATABASE_URL": databases(),
                          "ADMIN_TOKEN": TOKEN, "TORCH_THREADS": 1, "DATABASE_TIMEOUT": 2})
        client = app.test_client()
        face = upload(noise_png(0, 64))
        acknowledged = 0
        assert client.post("/api/reports", data={"face": face, "label": "lucy"}).status_code == 201
        acknowledged += 1
        assert client.post("/api/identify", data={"faces": upload(noise_png(9, 64))}).status_code == 200
        databases.stop()
        statuses = []
        for seed in range(1, 6):
            response = client.post("/api/reports", data={"face": upload(noise_png(seed, 64)), "label": "lucy"})
            statuses.append(response.status_code)
            assert_error(response, 503, "storage_unavailable")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert_error(client.get("/api/reports", headers=auth), 503, "storage_unavailable")
        assert client.post("/api/identify", data={"faces": upload(noise_png(9, 64))}).status_code == 200
        health = client.get("/healthz").get_json()
        assert health["status"] == "degraded" and health["storage"]["ok"] is False
        databases.start()
        started = time.monotonic()
        while True:  # bounded: the server is up, the pool reconnects on its first use
            response = client.post("/api/reports", data={"face": upload(noise_png(1, 64)), "label": "lucy"})
            if response.status_code == 201:
                acknowledged += 1
                break
            assert response.status_code == 503 and time.monotonic() - started < 20
            time.sleep(0.2)
        assert client.get("/healthz").get_json()["storage"]["ok"] is True
        assert stored_reports(app) == acknowledged
        db.dispose(app)


# ---------- the disk full: 507 storage_full, nothing half-written ----------
@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 MB tmpfs (a real file system that fills up); skipped where mounting is not allowed."""
    with tmpfs(tmp_path / "tiny", "4m") as folder:
        yield folder


def fill(folder):
    """Fill the file system holding `folder` to the last byte; returns the filler's path."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 512, 1):  # unbuffered: every byte that fits is written
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_answers_507_and_leaves_nothing_half_written(tiny_disk):
    root = tiny_disk / "reports"
    app = create_app({"TESTING": True, "REPORT_DIR": str(root), "MIN_FREE_BYTES": 1024 * 1024})
    client = app.test_client()
    assert client.post("/api/reports", data={"face": upload(noise_png(1)), "label": "lucy"}).status_code == 201
    assert client.get("/healthz").get_json()["disk"]["ok"] is True
    filler = fill(tiny_disk)
    images_before = sorted(p.name for p in (root / "images").rglob("*.png"))
    response = client.post("/api/reports", data={"face": upload(noise_png(2)), "label": "eileen"})
    assert_error(response, 507, "storage_full")
    assert sorted(p.name for p in (root / "images").rglob("*.png")) == images_before
    assert temp_files(root) == []
    health = client.get("/healthz").get_json()
    assert health["disk"]["ok"] is False and health["status"] == "degraded"
    assert any("disk" in reason for reason in health["reasons"])
    filler.unlink()  # space freed: no restart needed
    assert client.post("/api/reports", data={"face": upload(noise_png(2)), "label": "eileen"}).status_code == 201
    assert stored_reports(app) == 2
    assert client.get("/healthz").get_json()["disk"]["ok"] is True
    db.dispose(app)


def test_sqlite_out_of_space_answers_507_and_stores_nothing(tiny_disk, caplog):
    # The picture is on disk already (written by an earlier request); the database itself is what
    # cannot grow: SQLite's "database or disk is full" is a 507 too, and the report is not half-stored.
    root = tiny_disk / "reports"
    app = create_app({"TESTING": True, "REPORT_DIR": str(root)})
    client = app.test_client()
    assert client.post("/api/reports", data={"face": upload(noise_png(1, 20)), "label": "lucy"}).status_code == 201
    with Image.open(io.BytesIO(noise_png(2, 20))) as picture:
        stored_png = imaging.png_bytes(picture.convert("RGB"))  # what the endpoint stores for it
    with db.session(app, write=True) as s:
        images.store(s, root, stored_png)
    filler = fill(tiny_disk)
    response = client.post("/api/reports", data={"face": upload(noise_png(2, 20)), "label": "eileen"})
    assert_error(response, 507, "storage_full")
    assert "database or disk is full" in caplog.text  # SQLite's own error, not the picture's write
    filler.unlink()
    assert stored_reports(app) == 1
    assert client.post("/api/reports", data={"face": upload(noise_png(2, 20)), "label": "eileen"}).status_code == 201
    db.dispose(app)
