"""The gallery: enrol a character over HTTP and it is answered at once, by every worker of a real
gunicorn, combined with the head under one unknown threshold; removing it takes it back."""
import concurrent.futures
import io
import re

import numpy as np
import pytest
import urllib3
from conftest import encode, needs_classifier
from servers import gunicorn

from app import create_app
from app.demo_data import compose, outsiders, renpy_cast
from app.inference.face_crops import crop_face
from app.inference.gallery import Gallery
from app.inference.open_set import rank
from app.storage import db

TOKEN = "gallery-test-token-of-forty-characters!!"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
needs_art = pytest.mark.skipif(not (renpy_cast.is_fetched() and outsiders.is_fetched()),
                               reason="demo cast or outsiders missing: run scripts/setup.sh --dev")


def face_crops(name, count, seed):
    """PNG crops of one outsider (amoebax) or cast sprite, each on its own background and scale."""
    figures = [f for f in outsiders.load() + renpy_cast.load_sprites() if f.key == name or f.character == name]
    photos = renpy_cast.load_backgrounds()
    names = sorted(photos)
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        bg = compose.photo_crop(rng, photos[names[rng.integers(len(names))]], (384, 288))
        comp = compose.compose(rng, [figures[rng.integers(len(figures))]], bg, (384, 288))
        out += [encode(crop_face(comp.image, box)) for _, box in comp.faces]
    return out[:count]


def files(pngs):
    return [(io.BytesIO(p), f"face{i}.png") for i, p in enumerate(pngs)]


# --- the combination rule, on constructed embeddings ------------------------------------------------

class Calibration:
    similarity_threshold, slope = 0.8, 20.0


def answers(gallery, head_probs, head_labels, threshold, embeddings):
    """What Identifier.identify answers for these head probabilities and gallery embeddings."""
    enrolled = gallery.probabilities(embeddings)
    return [rank([(label, q, "head") for label, q in zip(head_labels, row)]
                 + [(name, q, "gallery") for name, q in mine.items()], threshold)
            for row, mine in zip(head_probs.tolist(), enrolled)]


def test_one_threshold_decides_for_head_and_gallery_on_one_scale():
    e = np.eye(4, dtype=np.float32)
    gallery = Gallery(Calibration(), ["tom", "tom", "Ann"], e[:3])
    head_labels, t = ["eileen", "ann"], 0.6
    probs = np.array([[0.6, 0.4], [0.95, 0.05], [0.5, 0.5]])
    queries = np.stack([e[0], e[3], 0.9 * e[2] + 0.436 * e[3]])  # tom exactly; nobody; near ann
    out = answers(gallery, probs, head_labels, t, queries)
    # A face equal to an enrolled one: the gallery's name comes first and is accepted.
    assert out[0]["predictions"][0]["label"] == "tom" and out[0]["predictions"][0]["source"] == "gallery"
    assert out[0]["unknown"] is False
    # Far from every enrolled face: the head's confident answer stands, from the head.
    assert out[1]["predictions"][0]["label"] == "eileen" and out[1]["predictions"][0]["source"] == "head"
    assert out[1]["predictions"][0]["score"] == pytest.approx(0.95 / 0.05 / (1 + 0.95 / 0.05 + 0.05 / 0.95), 1e-4)
    # "Ann" (enrolled) and "ann" (head) are one character, in the head's spelling given first.
    labels = [p["label"].casefold() for p in out[2]["predictions"]]
    assert labels.count("ann") == 1 and labels[0] == "ann" and out[2]["unknown"] is False
    # Every face's rows, head and gallery together, add up to at most 1.
    assert all(sum(p["score"] for p in face["predictions"]) <= 1.0 for face in out)
    # Below the calibrated similarity, with an unsure head: unknown.
    weak = answers(gallery, np.array([[0.5, 0.5]]), head_labels, t, [0.7 * e[0] + 0.714 * e[3]])
    assert weak[0]["unknown"] is True


# --- over HTTP, in process ------------------------------------------------------------------------

@pytest.fixture
def operator_app(tmp_path, database_url):
    """The app on SQLite and on PostgreSQL."""
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "reports"), "TORCH_THREADS": 1,
                      "ADMIN_TOKEN": TOKEN, "DATABASE_URL": database_url})
    yield app
    db.dispose(app)


@needs_art
@needs_classifier
def test_enrol_then_identify_then_remove(operator_app):
    client = operator_app.test_client()
    tom = face_crops("tom", 4, seed=1)
    eileen = face_crops("eileen happy", 1, seed=2)
    before = client.post("/api/identify", data={"faces": files(tom[2:3])}).get_json()["faces"][0]
    assert before["predictions"][0]["label"] != "tom"

    response = client.post("/api/characters", data={"name": "tom", "faces": files(tom[:2])}, headers=AUTH)
    assert response.status_code == 201, response.data
    assert response.get_json() == {"name": "tom", "faces": 2, "added": 2}
    again = client.post("/api/characters", data={"name": "tom", "faces": files(tom[1:2])}, headers=AUTH)
    assert again.get_json() == {"name": "tom", "faces": 2, "added": 0}  # the same picture appends nothing
    listing = client.get("/api/characters").get_json()
    assert "tom" in listing["characters"]
    assert {"name": "tom", "source": "gallery", "faces": 2} in listing["details"]
    assert {"name": "eileen", "source": "head", "faces": 0} in listing["details"]

    body = client.post("/api/identify", data={"faces": files([tom[2], tom[3], eileen[0]])}).get_json()
    answers = [(f["predictions"][0]["label"], f["unknown"]) for f in body["faces"]]
    assert answers == [("tom", False), ("tom", False), ("eileen", False)]

    assert client.delete("/api/characters/tom", headers=AUTH).status_code == 200
    assert client.delete("/api/characters/tom", headers=AUTH).status_code == 404
    after = client.post("/api/identify", data={"faces": files(tom[2:3])}).get_json()["faces"][0]
    assert after["predictions"][0]["label"] != "tom"


@needs_art
@needs_classifier
def test_a_name_that_differs_only_in_case_or_width_is_one_character(operator_app):
    client = operator_app.test_client()
    lucy = face_crops("lucy happy", 3, seed=4)
    tom = face_crops("tom", 3, seed=5)
    first = client.post("/api/characters", data={"name": "Lucy", "faces": files(lucy[:1])}, headers=AUTH)
    assert first.get_json()["name"] == "lucy"  # joins the head's label, in its spelling
    client.post("/api/characters", data={"name": "TOM", "faces": files(tom[:1])}, headers=AUTH)
    wide = client.post("/api/characters", data={"name": "ｔｏｍ", "faces": files(tom[1:2])}, headers=AUTH)
    assert wide.get_json() == {"name": "TOM", "faces": 2, "added": 1}  # the first enrolled spelling stays
    details = client.get("/api/characters").get_json()["details"]
    assert [d for d in details if d["name"].casefold() in ("lucy", "tom")] == [
        {"name": "lucy", "source": "both", "faces": 1}, {"name": "TOM", "source": "gallery", "faces": 2}]
    body = client.post("/api/identify", data={"faces": files([lucy[2], tom[2]])}).get_json()
    for face, name in zip(body["faces"], ("lucy", "TOM")):
        labels = [p["label"] for p in face["predictions"]]
        assert labels[0] == name and not face["unknown"]
        assert len({label.casefold() for label in labels}) == len(labels)  # one row per character
        assert sum(p["score"] for p in face["predictions"]) <= 1.0  # head and gallery on one scale


@pytest.mark.parametrize("form, code", [({"name": "x"}, "missing_file"), ({"faces": None}, "bad_name"),
                                        ({"name": " ", "faces": None}, "bad_name"),
                                        ({"name": "a\u202eb", "faces": None}, "bad_name")])
def test_enrol_refuses_bad_input(operator_app, form, code):
    data = {k: (v if v is not None else files([encode(np.zeros((32, 32, 3), np.uint8))])) for k, v in form.items()}
    response = operator_app.test_client().post("/api/characters", data=data, headers=AUTH)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code


def test_enrol_refuses_a_file_that_is_not_a_picture(operator_app):
    response = operator_app.test_client().post(
        "/api/characters", data={"name": "x", "faces": [(io.BytesIO(b"not a picture"), "x.png")]}, headers=AUTH)
    assert response.status_code == 415
    with db.session(operator_app) as s:
        from app.storage import gallery
        assert gallery.face_counts(s) == {}


# --- a real gunicorn with two workers -------------------------------------------------------------

def _post(http, url, fields, headers=None):
    response = http.request("POST", url, fields=fields, headers=headers or {}, retries=False, timeout=120)
    return response.status, response.json()


@needs_art
@needs_classifier
def test_enrolled_name_is_answered_by_every_gunicorn_worker(tmp_path):
    tom = face_crops("tom", 3, seed=3)
    env = {"FLASK_REPORT_DIR": str(tmp_path / "reports"), "FLASK_ADMIN_TOKEN": TOKEN}
    access = ["--access-logfile", "-", "--access-logformat", "pid=%(p)s %(m)s %(U)s %(s)s"]
    http = urllib3.PoolManager(maxsize=8)
    identify = [("faces", ("q.png", tom[2], "image/png"))]

    def identify_many(url, n=8):
        # Concurrent requests on separate connections: sync workers take one each, so both serve.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda _: _post(urllib3.PoolManager(), url + "/api/identify", identify), range(n)))

    def served_by(text):
        return set(re.findall(r"pid=<?(\d+)>? POST /api/identify 200", text))

    with gunicorn(tmp_path, env=env, workers=2, args=access) as (url, log):
        for _ in range(5):  # until both workers have served (the kernel picks who accepts)
            warm = identify_many(url)  # each worker loads the model and caches an empty gallery
            assert all(status == 200 and body["faces"][0]["predictions"][0]["label"] != "tom"
                       for status, body in warm)
            if len(served_by(log.read_text())) == 2:
                break
        assert len(served_by(log.read_text())) == 2, log.read_text()[-2000:]
        fields = [("name", "tom"), *[("faces", (f"{i}.png", p, "image/png")) for i, p in enumerate(tom[:2])]]
        status, body = _post(http, url + "/api/characters", fields, headers=AUTH)
        assert status == 201, body
        for _ in range(5):
            after = identify_many(url)
            # Every answer after the enrolment names him, whichever worker gave it, without a restart.
            assert all(status == 200 and body["faces"][0]["predictions"][0]["label"] == "tom"
                       for status, body in after)
            text = log.read_text()
            if len(served_by(text[text.index("POST /api/characters 201"):])) == 2:
                break
        assert len(served_by(text[text.index("POST /api/characters 201"):])) == 2, text[-2000:]


@needs_art
@needs_classifier
def test_two_instances_on_one_postgresql_share_the_gallery(tmp_path, postgres):
    # Two app instances (as behind one proxy) with one database and one shared data folder.
    tom = face_crops("tom", 3, seed=4)
    env = {"FLASK_REPORT_DIR": str(tmp_path / "reports"), "FLASK_ADMIN_TOKEN": TOKEN,
           "FLASK_DATABASE_URL": postgres()}
    http = urllib3.PoolManager()
    query = [("faces", ("q.png", tom[2], "image/png"))]
    with gunicorn(tmp_path, env=env) as (first, _), gunicorn(tmp_path, env=env) as (second, _):
        status, body = _post(http, second + "/api/identify", query)
        assert status == 200 and body["faces"][0]["predictions"][0]["label"] != "tom"
        fields = [("name", "tom"), *[("faces", (f"{i}.png", p, "image/png")) for i, p in enumerate(tom[:2])]]
        assert _post(http, first + "/api/characters", fields, headers=AUTH)[0] == 201
        status, body = _post(http, second + "/api/identify", query)
        assert status == 200 and body["faces"][0]["predictions"][0]["label"] == "tom"
        listing = http.request("GET", second + "/api/characters").json()
        assert {"name": "tom", "source": "gallery", "faces": 2} in listing["details"]
