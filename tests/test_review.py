"""The review queue: reports wait as pending; an operator accepts one (optionally relabelled: its
face joins the gallery and is answered at once) or rejects it."""
import io

import numpy as np
import pytest
from conftest import encode, needs_classifier, read_image
from test_gallery import AUTH, TOKEN, face_crops, needs_art

from app import create_app
from app.storage import db


@pytest.fixture
def app(tmp_path, database_url):
    """The app on SQLite and on PostgreSQL: the same review flow must hold on both."""
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "reports"), "TORCH_THREADS": 1,
                      "ADMIN_TOKEN": TOKEN, "DATABASE_URL": database_url})
    yield app
    db.dispose(app)


def report(client, png, label, predicted=""):
    response = client.post("/api/reports", data={"face": (io.BytesIO(png), "f.png"), "label": label,
                                                 "predicted": predicted})
    assert response.status_code == 201, response.data
    return response.get_json()["id"]


def pending(client):
    return client.get("/api/reports?status=pending", headers=AUTH).get_json()


@needs_art
@needs_classifier
def test_an_accepted_report_joins_the_gallery_and_is_answered(app):
    client = app.test_client()
    tom = face_crops("tom", 3, seed=11)
    first = report(client, tom[0], "Tom from amoebax", predicted="lucy")
    report(client, tom[1], "tom")
    queue = pending(client)
    assert queue["counts"] == {"pending": 2, "accepted": 0, "rejected": 0}
    assert [(r["id"], r["label"], r["predicted"]) for r in queue["reports"]][0] == (first, "Tom from amoebax", "lucy")
    image = client.get(f"/api/reports/{first}/image", headers=AUTH)
    # The stored crop is the upload re-encoded (no foreign bytes kept): the same pixels.
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert np.array_equal(np.asarray(read_image(io.BytesIO(image.data))), np.asarray(read_image(io.BytesIO(tom[0]))))

    # Accepted under a corrected name, the other under its own.
    accepted = client.post(f"/api/reports/{first}/accept", data={"label": "tom"}, headers=AUTH)
    assert accepted.status_code == 200 and accepted.get_json()["decided_label"] == "tom"
    second = pending(client)["reports"][0]["id"]
    assert client.post(f"/api/reports/{second}/accept", headers=AUTH).get_json()["decided_label"] == "tom"
    assert {"name": "tom", "source": "gallery", "faces": 2} in client.get("/api/characters").get_json()["details"]
    body = client.post("/api/identify", data={"faces": [(io.BytesIO(tom[2]), "q.png")]}).get_json()
    assert body["faces"][0]["predictions"][0]["label"] == "tom"
    assert pending(client)["counts"] == {"pending": 0, "accepted": 2, "rejected": 0}


def test_rejected_reports_leave_the_queue_and_never_join_the_gallery(app):
    client = app.test_client()
    rid = report(client, encode(np.full((24, 24, 3), 7, np.uint8)), "spam")
    response = client.post(f"/api/reports/{rid}/reject", headers=AUTH)
    assert response.status_code == 200 and response.get_json()["status"] == "rejected"
    assert pending(client)["reports"] == []
    assert client.get("/api/reports?status=rejected", headers=AUTH).get_json()["reports"][0]["id"] == rid
    again = client.post(f"/api/reports/{rid}/accept", headers=AUTH)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_decided"
    with db.session(app) as s:
        from app.storage import gallery
        assert gallery.face_counts(s) == {}


@pytest.mark.parametrize("path, status, code", [
    ("/api/reports/20260101T000000Z-000000000000/accept", 404, "not_found"),
    ("/api/reports/nonsense/reject", 404, "not_found"),
])
def test_unknown_reports_are_404(app, path, status, code):
    response = app.test_client().post(path, headers=AUTH)
    assert response.status_code == status and response.get_json()["error"]["code"] == code


def test_listing_checks_its_options(app):
    client = app.test_client()
    for i in range(3):
        report(client, encode(np.full((8, 8, 3), i, np.uint8)), f"label {i}")
    assert client.get("/api/reports?status=maybe", headers=AUTH).status_code == 400
    assert client.get("/api/reports?limit=x", headers=AUTH).status_code == 400
    page = client.get("/api/reports?limit=2&offset=1", headers=AUTH).get_json()
    assert [r["label"] for r in page["reports"]] == ["label 1", "label 2"]
    assert client.get("/api/reports?status=pending&limit=1", headers=AUTH).get_json()["counts"]["pending"] == 3
    bad = client.post(f"/api/reports/{page['reports'][0]['id']}/accept", data={"label": "x\u202ey"}, headers=AUTH)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_label"
