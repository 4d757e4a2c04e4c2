"""With PostgreSQL, app instances on different machines share what they store: each instance here
has its own empty report folder (no shared disk), and one PostgreSQL database. A report sent to
one is reviewed, picture included, on the other; a character enrolled on one is named by the
other; a retrained version made on one is served by the other. `flask storage move` copies what
was kept as files before."""
import hashlib
import io
import json
import shutil

import numpy as np
import pytest
from conftest import MODELS, encode, needs_classifier

from app import create_app
from app.storage import db, images, model_versions
from app.storage.model_dirs import load_card, write_card

TOKEN = "shared-storage-token-of-forty-characters"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def instance(root, url):
    return create_app({"TESTING": True, "REPORT_DIR": str(root), "DATABASE_URL": url, "ADMIN_TOKEN": TOKEN,
                       "TORCH_THREADS": 1, "CUTOUT_MODEL": "demo-cutout"})


def pictures(n, seed):
    rng = np.random.default_rng(seed)
    return [encode(rng.integers(0, 255, (80, 80, 3), np.uint8)) for _ in range(n)]


@needs_classifier
def test_two_instances_share_reports_gallery_and_retrained_models(tmp_path, postgres):
    url = postgres()
    one, two = instance(tmp_path / "one", url), instance(tmp_path / "two", url)
    c1, c2 = one.test_client(), two.test_client()
    face, a, b = pictures(3, seed=1)

    sent = c1.post("/api/reports", data={"face": (io.BytesIO(face), "f.png"), "label": "lucy"})
    assert sent.status_code == 201
    shown = c2.get(f"/api/reports/{sent.get_json()['id']}/image", headers=AUTH)
    assert shown.status_code == 200 and shown.data.startswith(b"\x89PNG")

    enrolled = c1.post("/api/characters", data={"name": "probe", "faces": [(io.BytesIO(a), "a.png"),
                                                                           (io.BytesIO(b), "b.png")]}, headers=AUTH)
    assert enrolled.status_code == 201, enrolled.data
    named = c2.post("/api/identify", data={"faces": (io.BytesIO(b), "b.png")}).get_json()
    assert named["faces"][0]["predictions"][0]["label"] == "probe"

    # A retrained version: its folder exists on instance one only; its files go in as rows.
    folder = tmp_path / "one" / "models" / "classifier-shared"
    shutil.copytree(MODELS / "demo-classifier", folder)
    write_card(folder, dict(load_card(folder), version="shared-1"))
    with db.session(one, write=True) as s:
        version = model_versions.record(s, "models/classifier-shared", "live")
        assert model_versions.keep_files(s, version, folder) == len(list(folder.iterdir()))
    answer = c2.post("/api/identify", data={"faces": (io.BytesIO(face), "f.png")}).get_json()
    assert answer["model"]["version"] == "shared-1"
    assert (tmp_path / "two" / "models" / "classifier-shared" / "card.json").is_file()

    # No picture file on either machine: they are rows.
    assert not list((tmp_path / "one").rglob("images/*/*.png")) and not list((tmp_path / "two").rglob("images/*/*.png"))
    for app in (one, two):
        db.dispose(app)


def test_storage_move_copies_old_files_into_postgresql_once(tmp_path, postgres):
    url = postgres()
    old = tmp_path / "old"
    kept = pictures(2, seed=2)
    with db.session(instance(old, None), write=True) as s:  # SQLite era: pictures are files
        shas = [images.store(s, old, png) for png in kept]
    broken = images.image_path(old, hashlib.sha256(b"other").hexdigest())
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"not what its name says")
    folder = old / "models" / "classifier-old"
    shutil.copytree(MODELS / "demo-classifier", folder)

    app = instance(old, url)
    with db.session(app, write=True) as s:
        version = model_versions.record(s, "models/classifier-old", "candidate")
    runner = app.test_cli_runner()
    first = runner.invoke(args=["storage", "move"])
    assert first.exit_code == 1 and "2 picture(s) and 1 model version(s) copied" in first.output
    assert "damaged" in first.output
    broken.unlink()
    again = runner.invoke(args=["storage", "move"])
    assert again.exit_code == 0 and "0 picture(s) and 0 model version(s)" in again.output

    elsewhere = instance(tmp_path / "elsewhere", url)
    with db.session(elsewhere) as s:
        assert [images.read(s, tmp_path / "elsewhere", sha) for sha in shas] == kept
        moved = model_versions.local_dir(s, tmp_path / "elsewhere", s.get(type(version), version.id))
    assert json.loads((moved / "card.json").read_text()) == load_card(folder)
    refused = instance(tmp_path / "sqlite", None).test_cli_runner().invoke(args=["storage", "move"])
    assert refused.exit_code != 0 and "SQLite" in refused.output
    for a in (app, elsewhere):
        db.dispose(a)


@pytest.mark.parametrize("database", ["sqlite"])
def test_with_sqlite_pictures_stay_files(tmp_path, database):
    app = instance(tmp_path / "r", None)
    with db.session(app, write=True) as s:
        sha = images.store(s, tmp_path / "r", pictures(1, seed=3)[0])
    assert images.image_path(tmp_path / "r", sha).is_file()
    db.dispose(app)
