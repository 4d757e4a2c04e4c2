"""The JSON API over Flask's test client, on the real demo models."""
import io

import numpy as np
import pytest
from conftest import encode, needs_classifier, needs_cutout, read_image
from PIL import Image

from app.serving import registry
from app.storage import db, images, reports


def upload(data, name="picture.png"):
    return (io.BytesIO(data), name)


def crop(comp, box):
    x, y, w, h = box
    return encode(comp.image[y:y + h, x:x + w])


def assert_error(response, status, code):
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == code and body["error"]["message"]


# ---------- errors are JSON everywhere ----------
@pytest.mark.parametrize("method, url, status", [
    ("get", "/no/such/page", 404), ("get", "/api/nothing", 404), ("get", "/api/identify", 405),
    ("put", "/api/reports", 405), ("delete", "/", 405), ("get", "/api/cutout", 405),
])
def test_http_errors_are_json(client, method, url, status):
    response = getattr(client, method)(url)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert "error" in response.get_json()


def test_upload_over_the_request_limit_is_a_json_413(report_dir):
    from app import create_app
    small = create_app({"TESTING": True, "REPORT_DIR": str(report_dir), "MAX_CONTENT_LENGTH": 50_000})
    big = encode(np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8))
    assert len(big) > 50_000
    response = small.test_client().post("/api/faces", data={"image": upload(big)})
    assert_error(response, 413, "too_large")


@pytest.mark.parametrize("url, field", [("/api/faces", "image"), ("/api/identify", "faces"),
                                        ("/api/cutout", "image"), ("/api/reports", "face")])
@pytest.mark.parametrize("data, status, code", [
    (None, 400, "missing_file"),
    (b"", 400, "empty_file"),
    (b"GIF89a\x01\x00\x01\x00", 415, "unsupported_type"),
    (b"plain text named .png", 415, "unsupported_type"),
    ("truncated", 400, "bad_image"),
    ("bomb", 413, "image_too_large"),
])
def test_bad_uploads_are_refused_on_every_endpoint(client, url, field, data, status, code):
    if data == "truncated":
        full = encode(np.zeros((64, 64, 3), np.uint8), "JPEG")
        data = full[: len(full) // 2]
    elif data == "bomb":
        data = encode(Image.new("L", (9000, 5000)), "PNG")
    form = {"label": "eileen"} if url == "/api/reports" else {}
    if data is not None:
        form[field] = upload(data)
    if url == "/api/cutout" and data == b"GIF89a\x01\x00\x01\x00":
        status, code = 400, "bad_image"  # a GIF is an animation to cut out (issue 31): this one is broken
    assert_error(client.post(url, data=form), status, code)


# ---------- pages and health ----------
def test_page_has_a_strict_csp_without_inline_code(client):
    response = client.get("/")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp  # eval lives in the worker only
    assert "unsafe-inline" not in csp and "object-src 'none'" in csp
    html = response.get_data(as_text=True)
    assert " onload=" not in html and " onclick=" not in html
    assert "<script>" not in html  # only external scripts
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_healthz_reports_models_without_loading_them(client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert set(body["models"]) == {"classifier", "cutout", "embedding"}
    assert body["models"]["classifier"]["loaded"] is False


def test_missing_model_is_a_clear_503(tmp_path, caplog):
    from app import create_app
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path), "REPORT_DIR": str(tmp_path / "r")})
    client = app.test_client()
    response = client.get("/api/characters")
    assert_error(response, 503, "model_unavailable")
    message = response.get_json()["error"]["message"]
    assert "classifier" in message and "setup.sh" not in message and str(tmp_path) not in message
    assert "setup.sh" in caplog.text and str(tmp_path) in caplog.text  # the operator's log says how
    face = encode(np.zeros((32, 32, 3), np.uint8))
    assert_error(client.post("/api/identify", data={"faces": upload(face)}), 503, "model_unavailable")
    assert_error(client.post("/api/cutout", data={"image": upload(face)}), 503, "model_unavailable")
    assert client.get("/healthz").get_json()["models"]["cutout"]["available"] is False


def test_damaged_model_is_a_503_not_a_500(tmp_path):
    from app import create_app
    (tmp_path / "demo-cutout").mkdir()
    (tmp_path / "demo-cutout" / "card.json").write_text("{not json")
    app = create_app({"TESTING": True, "MODEL_DIR": str(tmp_path), "REPORT_DIR": str(tmp_path / "r")})
    face = encode(np.zeros((32, 32, 3), np.uint8))
    assert_error(app.test_client().post("/api/cutout", data={"image": upload(face)}), 503, "model_unavailable")


# ---------- faces ----------
def test_faces_finds_the_demo_cast(client, demo_picture):
    path, comp = demo_picture
    response = client.post("/api/faces", data={"image": upload(path.read_bytes())})
    assert response.status_code == 200
    found = response.get_json()["faces"]
    assert found and set(found[0]) == {"x", "y", "w", "h"}
    # Every detection overlaps a true face.
    for f in found:
        assert any(abs(f["x"] - x) < w / 2 and abs(f["y"] - y) < h / 2 for _, (x, y, w, h) in comp.faces)


# ---------- identify ----------
@needs_classifier
def test_identify_answers_in_the_order_sent(app, client, demo_picture):
    _, comp = demo_picture
    files = [upload(crop(comp, box), f"{name}.png") for name, box in comp.faces]
    assert registry.model_status(app)["classifier"]["loaded"] is False  # lazy: nothing at startup
    response = client.post("/api/identify", data={"faces": files})
    assert response.status_code == 200, response.data
    body = response.get_json()
    labels = client.get("/api/characters").get_json()["characters"]
    assert len(body["faces"]) == len(comp.faces)
    for face in body["faces"]:
        scores = [p["score"] for p in face["predictions"]]
        assert 1 <= len(scores) <= 5 and scores == sorted(scores, reverse=True)
        assert {p["label"] for p in face["predictions"]} <= set(labels)
        assert isinstance(face["unknown"], bool)
    assert body["model"]["name"]
    # The demo cast's training sprites are named right, in the order sent.
    assert [f["predictions"][0]["label"] for f in body["faces"]] == [name for name, _ in comp.faces]
    assert registry.model_status(app)["classifier"]["loaded"] is True
    # The backbone runs in ONNX Runtime with TORCH_THREADS (from the config) intra-op threads.
    with app.app_context():
        session = registry.get_model("classifier").backbone.session
    assert session.get_session_options().intra_op_num_threads == 1


@needs_classifier
def test_identify_same_crop_twice_gives_same_answer(client, demo_picture):
    _, comp = demo_picture
    face = crop(comp, comp.faces[0][1])
    body = client.post("/api/identify", data={"faces": [upload(face), upload(face)]}).get_json()
    assert body["faces"][0] == body["faces"][1]


def test_identify_refuses_too_many_faces(client):
    face = encode(np.zeros((24, 24, 3), np.uint8))
    response = client.post("/api/identify", data={"faces": [upload(face) for _ in range(17)]})
    assert_error(response, 400, "too_many_faces")


def test_identify_refuses_one_bad_file_among_good_ones(client):
    good = encode(np.zeros((24, 24, 3), np.uint8))
    response = client.post("/api/identify", data={"faces": [upload(good), upload(b"nope")]})
    assert_error(response, 415, "unsupported_type")


@needs_classifier
def test_characters_lists_labels_and_card(client):
    body = client.get("/api/characters").get_json()
    assert body["characters"] and body["model"]["kind"] == "classifier"


# ---------- cutout ----------
@needs_cutout
def test_cutout_returns_rgba_png_of_the_same_size(client):
    picture = encode(np.random.default_rng(1).integers(0, 255, (123, 77, 3), np.uint8), "JPEG")
    response = client.post("/api/cutout", data={"image": upload(picture, "x.jpg")})
    assert response.status_code == 200 and response.mimetype == "image/png"
    out = Image.open(io.BytesIO(response.data))
    assert out.mode == "RGBA" and out.size == (77, 123)

    response = client.post("/api/cutout?output=mask", data={"image": upload(picture), "box": "10,10,40,60"})
    mask = Image.open(io.BytesIO(response.data))
    assert mask.mode == "L" and mask.size == (77, 123)
    alpha = np.asarray(mask)
    assert alpha[:10].max() == 0 and alpha[:, :10].max() == 0  # nothing outside the box


@pytest.mark.parametrize("box", ["1,2,3", "a,b,c,d", "0,0,0,10", "-1,0,10,10", "70,0,10,10", "0,0,10,500",
                                 "inf,0,5,5", "1e400,0,5,5", "nan,0,5,5", "0,0,-inf,5"])
def test_cutout_refuses_bad_boxes(client, box):
    picture = encode(np.zeros((123, 77, 3), np.uint8))
    assert_error(client.post("/api/cutout", data={"image": upload(picture), "box": box}), 400, "bad_box")


@needs_cutout
def test_cutout_hard_alpha_switch(client):
    picture = encode(np.random.default_rng(2).integers(0, 255, (64, 48, 3), np.uint8))
    response = client.post("/api/cutout?output=mask&alpha=hard&largest=1&clean=1&threshold=0.4",
                           data={"image": upload(picture)})
    assert response.status_code == 200
    assert set(np.unique(np.asarray(Image.open(io.BytesIO(response.data))))) <= {0, 255}


@needs_cutout
def test_cutout_raw_alpha_is_the_map_and_soft_drops_its_haze(client):
    picture = encode(np.random.default_rng(3).integers(0, 255, (64, 48, 3), np.uint8))

    def mask(query):
        response = client.post(f"/api/cutout?output=mask{query}", data={"image": upload(picture)})
        assert response.status_code == 200
        return np.asarray(Image.open(io.BytesIO(response.data))).astype(int)
    raw, soft = mask("&alpha=raw"), mask("")
    # The raw mask is rounded to 8 bits before this ramp, the served one after it: 2 levels apart at most.
    assert np.abs(soft - np.clip((raw / 255 - 0.25) / 0.5, 0, 1) * 255).max() <= 2.5
    assert (soft[raw < 0.24 * 255] == 0).all() and (soft[raw > 0.76 * 255] == 255).all()


@pytest.mark.parametrize("faces", ["1,2,3", "0,0,10,500", "5,5,10,10;a,b,c,d", ";".join(["1,1,5,5"] * 65)])
def test_cutout_refuses_bad_faces(client, faces):
    picture = encode(np.zeros((123, 77, 3), np.uint8))
    for field in ("faces", "face"):
        if field == "face" and ";" in faces:
            continue
        assert_error(client.post("/api/cutout", data={"image": upload(picture), field: faces}), 400, "bad_box")


def _box_text(box):
    return ",".join(str(v) for v in box)


@needs_cutout
def test_cutout_keeps_only_the_figures_the_faces_lie_on(client, demo_picture):
    from app.inference import prompts

    path, comp = demo_picture
    picture = encode(comp.image)
    faces = [box for _, box in comp.faces]

    def mask(query, **fields):
        response = client.post(f"/api/cutout?output=mask&alpha=raw{query}", data={"image": upload(picture), **fields})
        assert response.status_code == 200, response.data
        return np.asarray(Image.open(io.BytesIO(response.data))).astype(np.float32) / 255

    raw = mask("")
    prompted = mask("", faces=";".join(_box_text(b) for b in faces))
    expected = prompts.keep_figures(raw, faces)
    assert np.mean(np.abs(prompted - expected) > 1 / 255) < 0.001  # the same map, 8-bit rounding aside
    assert np.array_equal(mask("&prompt=0", faces=";".join(_box_text(b) for b in faces)), raw)
    # One character: the other's face is not in its cutout.
    first = mask("", face=_box_text(faces[0]), faces=";".join(_box_text(b) for b in faces))
    x, y, w, h = faces[1]
    assert first[y:y + h, x:x + w].max() < 0.1
    x, y, w, h = faces[0]
    assert first[y:y + h, x:x + w].mean() > 0.5


@pytest.mark.parametrize("query", ["alpha=half", "threshold=2", "threshold=x", "largest=yes", "clean=2", "prompt=2"])
def test_cutout_refuses_bad_options(client, query):
    picture = encode(np.zeros((8, 8, 3), np.uint8))
    assert_error(client.post(f"/api/cutout?{query}", data={"image": upload(picture)}), 400, "bad_option")


def test_cutout_refuses_unknown_output(client):
    picture = encode(np.zeros((8, 8, 3), np.uint8))
    assert_error(client.post("/api/cutout?output=svg", data={"image": upload(picture)}), 400, "bad_output")


# ---------- reports ----------
@pytest.mark.parametrize("label, stored", [
    ("eileen", "eileen"),
    ("  初音ミク  ", "初音ミク"),
    ("王小明", "王小明"),
    ("e\u0301ponine", "\u00e9ponine"),  # NFD in, NFC stored
    ("Sylvie (green dress)", "Sylvie (green dress)"),
    ("x" * 100, "x" * 100),
    ("../../etc/passwd", "../../etc/passwd"),  # just text: it never becomes a path
])
def test_reports_keep_any_language_exactly(app, client, report_dir, label, stored):
    face = encode(np.full((30, 30, 3), 200, np.uint8))
    response = client.post("/api/reports", data={"face": upload(face), "label": label, "predicted": "lucy"})
    assert response.status_code == 201, response.data
    report_id = response.get_json()["id"]
    with db.session(app) as s:
        row = reports.get(s, report_id)
    assert (row.label, row.predicted, row.status) == (stored, "lucy", "pending")
    path = images.image_path(report_dir, row.image_sha256)
    assert read_image(path).size == (30, 30)
    # The picture is the only file besides the database; no path is built from the label.
    files = {p.relative_to(report_dir) for p in report_dir.rglob("*") if p.is_file()}
    assert {f for f in files if not f.name.startswith(db.SQLITE_NAME)} == {path.relative_to(report_dir)}


@pytest.mark.parametrize("label", [None, "", "   ", "x" * 101, "bad\x00byte", "two\nlines", "tab\there",
                                   "\u202eevil", "zero\u200bwidth"])
def test_reports_refuse_bad_labels(app, client, report_dir, label):
    face = encode(np.zeros((30, 30, 3), np.uint8))
    form = {"face": upload(face)}
    if label is not None:
        form["label"] = label
    assert_error(client.post("/api/reports", data=form), 400, "bad_label")
    assert not (report_dir / "images").exists()  # nothing half-written
    with db.session(app) as s:
        assert reports.count(s) == 0


def test_reports_reencode_the_crop(app, client, report_dir):
    face = encode(np.full((16, 16, 3), 90, np.uint8), "JPEG")
    report_id = client.post("/api/reports", data={"face": upload(face), "label": "lucy"}).get_json()["id"]
    with db.session(app) as s:
        sha256 = reports.get(s, report_id).image_sha256
    assert images.image_path(report_dir, sha256).read_bytes().startswith(b"\x89PNG")


def test_the_same_picture_reported_again_keeps_the_first_report(client):
    face = encode(np.full((20, 20, 3), 60, np.uint8))
    first = client.post("/api/reports", data={"face": upload(face), "label": "lucy"})
    again = client.post("/api/reports", data={"face": upload(face), "label": "eileen"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json() == {"id": first.get_json()["id"], "label": "lucy", "duplicate": True}


def test_a_full_review_queue_answers_507(report_dir):
    from app import create_app
    app = create_app({"TESTING": True, "REPORT_DIR": str(report_dir), "REPORT_QUOTA_BYTES": 300})
    client = app.test_client()
    noise = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)  # ~450 bytes as PNG
    response = client.post("/api/reports", data={"face": upload(encode(noise)), "label": "lucy"})
    assert_error(response, 507, "storage_full")
    assert "review" in response.get_json()["error"]["message"]
    small = encode(np.zeros((4, 4, 3), np.uint8))
    assert client.post("/api/reports", data={"face": upload(small), "label": "lucy"}).status_code == 201


# ---------- proxy ----------
def test_proxy_fix_trusts_exactly_one_hop(monkeypatch, report_dir):
    from flask import request

    from app import create_app
    monkeypatch.setenv("FLASK_PROXY_FIX", "1")
    app = create_app({"TESTING": True, "REPORT_DIR": str(report_dir)})
    app.add_url_rule("/whoami", "whoami", lambda: {"addr": request.remote_addr, "scheme": request.scheme})
    body = app.test_client().get("/whoami", headers={
        "X-Forwarded-For": "6.6.6.6, 10.0.0.7", "X-Forwarded-Proto": "https"}).get_json()
    assert body == {"addr": "10.0.0.7", "scheme": "https"}


def test_without_proxy_fix_forwarded_headers_are_ignored(client, app):
    from flask import request
    app.add_url_rule("/whoami", "whoami", lambda: {"addr": request.remote_addr})
    body = client.get("/whoami", headers={"X-Forwarded-For": "6.6.6.6"}).get_json()
    assert body["addr"] != "6.6.6.6"
