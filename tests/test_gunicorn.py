"""The app under a real gunicorn on 127.0.0.1: lazy model loading per worker, real HTTP."""
import io
import json

import numpy as np
import pytest
import urllib3
from conftest import encode, needs_models
from PIL import Image
from servers import gunicorn

from app import create_app
from app.storage import db, reports


@pytest.fixture(scope="module")
def gunicorn_url(tmp_path_factory):
    """`gunicorn wsgi:app` (one worker) on a free port; yields (url, report dir)."""
    tmp = tmp_path_factory.mktemp("gunicorn")
    report_dir = tmp / "reports"
    env = {"FLASK_REPORT_DIR": str(report_dir), "FLASK_MAX_CONTENT_LENGTH": str(2 * 1024 * 1024)}
    with gunicorn(tmp, env) as (url, _):
        yield url, report_dir


@needs_models
def test_api_over_gunicorn(gunicorn_url, demo_picture):
    url, report_dir = gunicorn_url
    http = urllib3.PoolManager(retries=False, timeout=120)

    health = json.loads(http.request("GET", url + "/healthz").data)
    assert health["models"]["classifier"]["loaded"] is False  # nothing loaded before first use

    path, comp = demo_picture
    picture = path.read_bytes()
    found = http.request("POST", url + "/api/faces", fields={"image": ("p.png", picture, "image/png")})
    assert found.status == 200 and json.loads(found.data)["faces"]

    x, y, w, h = comp.faces[0][1]
    face = encode(comp.image[y:y + h, x:x + w])
    r = http.request("POST", url + "/api/identify", fields=[("faces", ("a.png", face, "image/png")),
                                                            ("faces", ("b.png", face, "image/png"))])
    assert r.status == 200, r.data
    assert len(json.loads(r.data)["faces"]) == 2
    assert json.loads(http.request("GET", url + "/healthz").data)["models"]["classifier"]["loaded"] is True

    r = http.request("POST", url + "/api/cutout", fields={"image": ("p.png", picture, "image/png")})
    assert r.status == 200 and r.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(r.data)).size == (comp.image.shape[1], comp.image.shape[0])

    r = http.request("POST", url + "/api/reports", fields={"face": ("f.png", face, "image/png"),
                                                           "label": "シルヴィ", "predicted": "lucy"})
    assert r.status == 201
    report_id = json.loads(r.data)["id"]
    reader = create_app({"REPORT_DIR": str(report_dir)})  # the same database, read from here
    with db.session(reader) as s:
        assert reports.get(s, report_id).label == "シルヴィ"
    db.dispose(reader)


def test_errors_over_gunicorn(gunicorn_url):
    url, _ = gunicorn_url
    http = urllib3.PoolManager(retries=False, timeout=30)
    big = encode(np.random.default_rng(0).integers(0, 255, (1200, 1200, 3), np.uint8))
    assert len(big) > 2 * 1024 * 1024
    for method, path, fields, status in [
        ("GET", "/nope", None, 404),
        ("GET", "/api/identify", None, 405),
        ("POST", "/api/faces", {"image": ("x.png", b"not an image", "image/png")}, 415),
        ("POST", "/api/faces", {"image": ("x.png", big, "image/png")}, 413),
    ]:
        r = http.request(method, url + path, fields=fields)
        assert r.status == status
        assert r.headers["Content-Type"].startswith("application/json")
        assert json.loads(r.data)["error"]["code"]
