"""Teaching a cast from an episode (issue 30): a generated clip of characters no model saw becomes
face tracks and groups; a teach session over HTTP is named, merged and trimmed, and the gallery
answers what was named; a cancelled job leaves nothing; bad uploads get clear errors.

The clip is made here with the project's own engine (app/field_bench/episodes.py) from the field
bench's Live2D characters, encoded with ffmpeg; the embedder is the real demo-embedding model.
"""
import functools
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import model_present
from PIL import Image
from queue_support import worker
from sqlalchemy import func, select

from app.field_bench import episodes, sources
from app.jobs import files, store
from app.jobs import teach as teach_job
from app.storage import db
from app.storage.models import Face, Job, TeachFace, TeachSession
from app.teach import material, pipeline, tracks
from app.teach import store as teach_store

TOKEN = "teach-test-token-of-forty-characters!!!!"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCRIPT = [(3.0, ["unitychan"]), (3.0, ["unitychan", "z16"]), (3.0, ["z16"])]

pytestmark = [
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg missing (apt-get install ffmpeg)"),
    pytest.mark.skipif(not (sources.DEFAULT_CACHE / "live2d" / "z16-default").is_dir(),
                       reason="bench Live2D renders missing: run `flask --app wsgi bench fetch`"),
    pytest.mark.skipif(not model_present("demo-embedding"), reason="models/demo-embedding not installed"),
]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 9-second clip: unitychan alone, then with z16, then z16 alone; (path, truth)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    truth = episodes.render(path, 0, seed=5, split="test", script=SCRIPT)
    return path, truth


@pytest.fixture(scope="module")
def embedder():
    from conftest import MODELS

    from app.inference.gallery import Embedder
    return Embedder.load(MODELS / "demo-embedding", threads=1)


@pytest.fixture
def make_app(make_app):
    return functools.partial(make_app, ADMIN_TOKEN=TOKEN)


def test_the_teach_constants_agree_with_the_face_data_sets():
    from app.training import face_dataset
    assert tracks.MARGIN == face_dataset.DEFAULT_MARGIN  # crops like the gallery's enrolled ones
    assert material.PICTURE_SUFFIXES == face_dataset.IMAGE_SUFFIXES


def test_iou_and_linking_rules():
    assert tracks.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert tracks.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert tracks.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_a_clip_becomes_tracks_and_groups_with_the_expected_counts(clip, embedder):
    path, truth = clip
    sampled = list(material.frames(path))
    assert len(sampled) == 36 and [f.index for f in sampled if f.cut] == [0, 12, 24]  # three scenes
    result = pipeline.run(path, embedder)
    assert result.frames == 36
    who = [episodes.character_at(truth, f.seconds, f.box) for f in result.faces]
    placed = [(f.group, w) for f, w in zip(result.faces, who) if f.group >= 0]
    # One group per character, each pure; a track never crosses a cut, so at least one track per
    # (scene, character): 4.
    assert result.groups == 2
    assert len({g for g, _ in placed}) == 2 and all(len({w for g2, w in placed if g2 == g}) == 1
                                                     for g, _ in placed)
    assert {w for _, w in placed} == {"unitychan", "z16"}
    assert result.tracks >= 4
    assert sum(f.group < 0 for f in result.faces) <= 0.1 * len(result.faces)
    # Near-duplicates collapsed: fewer faces kept than seen.
    assert len(result.faces) < sum(len(truth["frames"][round(f.seconds * truth["fps"])]) for f in sampled)


def _submit(client, path, name="clip.mp4"):
    return client.post("/api/teach", data={"material": [(io.BytesIO(path.read_bytes()), name)]}, headers=AUTH)


def _run_inline(app, job_key):
    """Run a queued teach job in this process (the worker's own body)."""
    job = store.by_key(app, job_key)
    teach_job.run(app, job.id)
    return store.get(app, job.id)


def test_naming_merging_and_dropping_change_what_is_enrolled(make_app, clip, database_url):
    app = make_app(DATABASE_URL=database_url)
    client = app.test_client()
    path, _truth = clip
    response = _submit(client, path)
    assert response.status_code == 202, response.data
    key, job = response.get_json()["session"], response.get_json()["job"]
    assert _run_inline(app, job["id"]).status == "done"
    session = client.get(f"/api/teach/{key}", headers=AUTH).get_json()
    assert session["status"] == "ready" and len(session["groups"]) == 2
    first, second = session["groups"]
    assert first["faces"] >= 3 and first["typical"] and "answer" in first
    with client.get(f"{session['faces_url']}{first['typical'][0]}", headers=AUTH) as png:
        assert png.status_code == 200 and png.mimetype == "image/png"

    # Drop one face, then name: the dropped face is not enrolled; names match case-insensitively.
    faces = client.get(f"/api/teach/{key}/groups/{first['number']}", headers=AUTH).get_json()["faces"]
    dropped = faces[-1]["id"]
    assert client.post(f"/api/teach/{key}/faces/{dropped}/drop", headers=AUTH).status_code == 200
    named = client.post(f"/api/teach/{key}/groups/{first['number']}/name", json={"name": "Ren"}, headers=AUTH)
    assert named.status_code == 200, named.data
    assert named.get_json()["added"] == min(teach_store.ENROL_FACES, first["faces"] - 1)
    with db.session(app) as s:
        enrolled = set(s.scalars(select(TeachFace.id).where(TeachFace.enrolled_id.is_not(None))))
        assert dropped not in enrolled and len(enrolled) == named.get_json()["added"]
    listing = client.get("/api/characters").get_json()
    assert any(d["name"] == "Ren" and d["faces"] == len(enrolled) for d in listing["details"])
    # The operator page's thumbnails: the character's enrolled faces, each served (any case of the name).
    thumbs = client.get("/api/gallery/faces?name=REN", headers=AUTH).get_json()["faces"]
    assert len(thumbs) == len(enrolled) and {t["source"] for t in thumbs} == {"teach"}
    with client.get(thumbs[0]["url"], headers=AUTH) as picture:
        assert picture.status_code == 200 and picture.mimetype == "image/png"
    assert client.get("/api/gallery/faces/999999", headers=AUTH).status_code == 404
    assert client.get("/api/gallery/faces?name=nobody", headers=AUTH).status_code == 404

    # Naming the second group "ren" joins the same character; merging it into the first instead
    # enrols from the union, and dropping an enrolled face takes it out of the gallery.
    merged = client.post(f"/api/teach/{key}/groups/{second['number']}/merge", json={"into": first["number"]},
                         headers=AUTH)
    assert merged.status_code == 200, merged.data
    with db.session(app) as s:
        after_merge = s.scalar(select(func.count(Face.id)))
        victim = s.scalar(select(TeachFace).where(TeachFace.enrolled_id.is_not(None)))
    assert after_merge >= len(enrolled)
    assert client.post(f"/api/teach/{key}/faces/{victim.id}/drop", headers=AUTH).status_code == 200
    with db.session(app) as s:
        assert s.scalar(select(func.count(Face.id))) == after_merge - 1
    view = client.get(f"/api/teach/{key}", headers=AUTH).get_json()
    assert [g["number"] for g in view["groups"]] == [first["number"]]  # the merged group is gone
    # The app now answers the name for the group's faces.
    assert view["groups"][0]["answer"]["label"] == "Ren"
    # Discarding takes every enrolled face back out.
    assert client.post(f"/api/teach/{key}/groups/{first['number']}/discard", headers=AUTH).status_code == 200
    with db.session(app) as s:
        assert s.scalar(select(func.count(Face.id))) == 0
    assert "Ren" not in client.get("/api/characters").get_json()["characters"]  # no face left: no name
    again = client.post(f"/api/teach/{key}/groups/{first['number']}/name", json={"name": "x"}, headers=AUTH)
    assert again.status_code == 409


def test_a_worker_runs_the_job_and_the_session_can_be_resumed(make_app, clip, tmp_path):
    app = make_app()
    client = app.test_client()
    response = _submit(client, clip[0])
    key, job_id = response.get_json()["session"], response.get_json()["job"]["id"]
    env = {"FLASK_REPORT_DIR": app.config["REPORT_DIR"], "FLASK_ADMIN_TOKEN": TOKEN}
    with worker(tmp_path, env) as w:
        import time
        deadline = time.monotonic() + 180
        while True:
            job = client.get(f"/api/jobs/{job_id}").get_json()["job"]
            if job["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, w.output()[-3000:]
            time.sleep(0.2)
        assert job["status"] == "done", w.output()[-3000:]
    listing = client.get("/api/teach", headers=AUTH).get_json()["sessions"]
    assert [s["id"] for s in listing] == [key] and listing[0]["status"] == "ready"
    # A new app (a restart) reads the same session back.
    again = make_app().test_client().get(f"/api/teach/{key}", headers=AUTH).get_json()
    assert len(again["groups"]) == 2
    assert not files.sizes(app, store.by_key(app, job_id), "in/")  # the upload is not kept


def test_a_cancelled_job_leaves_nothing_half_written(make_app, clip, database_url):
    app = make_app(DATABASE_URL=database_url)
    client = app.test_client()
    response = _submit(client, clip[0])
    job = store.by_key(app, response.get_json()["job"]["id"])
    images_before = set((Path(app.config["REPORT_DIR"]) / "images").rglob("*.png"))
    me = store.worker_id()
    assert store.claim(app, job.id, me)

    def cancel_midway(stage, done, total):
        if stage == "frames" and done == 10:
            assert client.delete(f"/api/jobs/{job.key}").status_code == 200

    with app.app_context():
        assert teach_job.attempt(app, job.id, me, on_progress=cancel_midway) == "cancelled"
    with db.session(app) as s:
        assert s.scalar(select(func.count(TeachSession.id))) == 0
        assert s.scalar(select(func.count(TeachFace.id))) == 0
        assert s.get(Job, job.id).status == "cancelled"
    assert not files.exists(app, job)
    assert set((Path(app.config["REPORT_DIR"]) / "images").rglob("*.png")) == images_before

    # Cancelled while still queued: the session is gone from the list, and a worker that gets the
    # message later does nothing.
    queued = _submit(client, clip[0]).get_json()
    assert client.delete(f"/api/jobs/{queued['job']['id']}").status_code == 200
    assert client.get("/api/teach", headers=AUTH).get_json()["sessions"] == []
    _run_inline(app, queued["job"]["id"])
    with db.session(app) as s:
        assert s.scalar(select(func.count(TeachSession.id))) == 0


def test_bad_and_oversized_uploads_get_clear_errors(make_app, clip, tmp_path):
    app = make_app(TEACH_MAX_BYTES=200_000)
    client = app.test_client()
    assert client.post("/api/teach", data={}, headers=AUTH).get_json()["error"]["code"] == "missing_file"
    text = client.post("/api/teach", data={"material": [(io.BytesIO(b"not a video at all"), "a.mp4")]},
                       headers=AUTH)
    assert text.status_code == 415 and text.get_json()["error"]["code"] == "unsupported_material"
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 300_000)
    too_big = _submit(client, big)
    assert too_big.status_code == 413 and too_big.is_json
    mixed = client.post("/api/teach", data={"material": [(io.BytesIO(_png()), "a.png"),
                                                         (io.BytesIO(b"junk"), "b.png")]}, headers=AUTH)
    assert mixed.status_code == 415
    assert client.post("/api/teach", data={"material": [(io.BytesIO(_png()), "a.png")]}).status_code in (401, 403)
    with db.session(app) as s:
        assert s.scalar(select(func.count(TeachSession.id))) == 0 and s.scalar(select(func.count(Job.id))) == 0
    assert client.get("/api/teach/tnope", headers=AUTH).status_code == 404


def _png():
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_an_animated_picture_and_a_set_of_pictures_teach_like_the_video(make_app, clip):
    app = make_app()
    client = app.test_client()
    frames = [Image.fromarray(f.rgb) for f in material.frames(clip[0])]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=250, loop=0)
    pngs = []
    for frame in frames:
        buf = io.BytesIO()
        frame.save(buf, format="PNG")
        pngs.append(buf.getvalue())
    for material_files in ([(io.BytesIO(gif.getvalue()), "episode.gif")],
                           [(io.BytesIO(p), f"{i:04d}.png") for i, p in enumerate(pngs)]):
        response = client.post("/api/teach", data={"material": material_files}, headers=AUTH)
        assert response.status_code == 202, response.data
        assert _run_inline(app, response.get_json()["job"]["id"]).status == "done"
        view = client.get(f"/api/teach/{response.get_json()['session']}", headers=AUTH).get_json()
        assert view["stats"]["frames"] == 36 and len(view["groups"]) == 2, view["stats"]


def test_flask_teach_makes_a_session_from_a_folder(make_app, clip, tmp_path):
    app = make_app()
    folder = tmp_path / "frames"
    folder.mkdir()
    for frame in material.frames(clip[0]):
        Image.fromarray(frame.rgb).save(folder / f"{frame.index:04d}.png")
    result = app.test_cli_runner().invoke(args=["teach", str(folder)])
    assert result.exit_code == 0, result.output
    assert "2 groups" in result.output
    with db.session(app) as s:
        session = s.scalar(select(TeachSession))
        assert session.status == "ready" and json.loads(session.stats)["frames"] == 36
