"""Retraining the head on the gallery plus the existing data: a worse head is refused, a good one goes
live for every request without a restart, `flask models rollback` goes back one version, and the
page's background job reports its progress."""
import io
import re
import time

import numpy as np
import pytest
import torch
from conftest import needs_classifier
from queue_support import worker
from test_gallery import AUTH, TOKEN, face_crops, needs_art

from app import create_app
from app.demo_data import compose
from app.demo_data import renpy_cast as demo_cast
from app.inference.face_crops import crop_face
from app.storage import db, gallery, model_versions
from app.training import classifier_train, retrain

pytestmark = [needs_art, needs_classifier]


@pytest.fixture(scope="module")
def live_setup(tmp_path_factory):
    """A small demo-cast data set (train/val/test) and a head trained on it, serving as the live model."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("retrain")
    data = root / "data"
    for split, per_sprite, seed in (("train", 3, 1), ("val", 2, 2), ("test", 3, 3)):
        spec = demo_cast.SPLITS[split]
        photos = demo_cast.load_backgrounds(names=spec["backgrounds"])
        rng = np.random.default_rng(seed)
        for sprite in demo_cast.load_sprites(keys=spec["sprites"]):
            made = 0
            while made < per_sprite:
                bg = compose.photo_crop(rng, photos[sorted(photos)[rng.integers(len(photos))]], (384, 288))
                comp = compose.compose(rng, [sprite], bg, (384, 288))
                for character, box in comp.faces:
                    folder = data / split / character
                    folder.mkdir(parents=True, exist_ok=True)
                    crop_face(comp.image, box).save(folder / f"{sprite.key.replace(' ', '-')}-{made}.png")
                    made += 1
    config = classifier_train.TrainConfig(augment=1, patience=10, cache_root=str(root / "features"))
    live = root / "live-model"
    classifier_train.train_model_dir(data, live, config, name="live-model", command="test fixture")
    return data, live


@pytest.fixture
def app(tmp_path, live_setup):
    data, live = live_setup
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "reports"), "TORCH_THREADS": 1,
                      "ADMIN_TOKEN": TOKEN, "CLASSIFIER_MODEL": str(live), "RETRAIN_DATA_DIR": str(data)})
    yield app
    db.dispose(app)


def enrol(app, name, pngs):
    faces = [(io.BytesIO(p), f"{i}.png") for i, p in enumerate(pngs)]
    response = app.test_client().post("/api/characters", headers=AUTH, data={"name": name, "faces": faces})
    assert response.status_code == 201, response.data


def identify_model(app, png):
    body = app.test_client().post("/api/identify", data={"faces": [(io.BytesIO(png), "q.png")]}).get_json()
    return body["model"]["name"], body["faces"][0]


def test_the_gate_compares_each_figure_with_tolerance():
    live = {"top1": 0.95, "false_unknown_rate": 0.05, "unknown_rejection_rate": 0.9}
    assert retrain.compare(live, {**live, "top1": 0.945}).accepted  # within 0.01
    refused = retrain.compare(live, {**live, "top1": 0.90})
    assert not refused.accepted and "top1 0.9000 vs live 0.9500" in refused.reason and "stays" in refused.reason
    assert not retrain.compare(live, {**live, "false_unknown_rate": 0.2}).accepted
    assert not retrain.compare(live, {**live, "unknown_rejection_rate": 0.5}).accepted


def test_train_classifier_needs_data_or_the_gallery(app):
    result = app.test_cli_runner().invoke(args=["train", "classifier"])
    assert result.exit_code == 2 and "DATA_DIR" in result.output and "--from-gallery" in result.output


def test_a_worse_retrain_is_refused_and_the_live_model_stays(app, live_setup):
    _, live = live_setup
    # Poisoned reviews: Eileen's and Sylvie's faces enrolled under each other's names.
    enrol(app, "sylvie", face_crops("eileen happy", 6, seed=21) + face_crops("eileen vhappy", 6, seed=22))
    enrol(app, "eileen", face_crops("sylvie blue smile", 6, seed=24) + face_crops("sylvie blue normal", 6, seed=25))
    result = app.test_cli_runner().invoke(args=["train", "classifier", "--from-gallery", "--augment", "1",
                                                "--patience", "10"])
    assert result.exit_code == 3, result.output
    assert re.search(r"Refused: worse than the live model on held-out faces: top1 [\d.]+ vs live", result.output)
    with db.session(app) as s:
        assert model_versions.live(s) is None
        assert [v.status for v in model_versions.history(s)] == ["refused"]
    name, _ = identify_model(app, face_crops("eileen concerned", 1, seed=23)[0])
    assert name == "live-model"


def test_a_retrain_goes_live_everywhere_and_rolls_back(app, live_setup):
    tom = face_crops("tom", 8, seed=31)
    enrol(app, "tom", tom[:7])
    runner = app.test_cli_runner()
    result = runner.invoke(args=["train", "classifier", "--from-gallery", "--augment", "1", "--patience", "10"])
    assert result.exit_code == 0, result.output
    assert "Accepted" in result.output and "is live" in result.output
    name, face = identify_model(app, tom[7])
    assert name.startswith("classifier-")  # the new head serves without a restart
    assert face["predictions"][0]["label"] == "tom"
    with db.session(app) as s:
        version = model_versions.live(s)
        card_labels = (model_versions.resolve(app.config["REPORT_DIR"], version) / "card.json").read_text()
    assert '"tom"' in card_labels  # the head itself learnt the gallery's character

    assert "live" in runner.invoke(args=["models", "versions"]).output
    result = runner.invoke(args=["models", "rollback"])
    assert result.exit_code == 0 and "configured model" in result.output, result.output
    assert "rolled_back" in runner.invoke(args=["models", "versions"]).output
    assert identify_model(app, tom[7])[0] == "live-model"
    result = runner.invoke(args=["models", "rollback"])
    assert result.exit_code != 0 and "already serving" in result.output


def test_retraining_from_the_page_runs_as_a_background_job(app, tmp_path):
    enrol(app, "tom", face_crops("tom", 6, seed=41))
    client = app.test_client()
    response = client.post("/api/classifiers/retrain", headers=AUTH)
    assert response.status_code == 202, response.data
    job_id = response.get_json()["job"]["id"]
    second = client.post("/api/classifiers/retrain", headers=AUTH)
    assert second.status_code == 409 and second.get_json()["error"]["code"] == "job_running"
    seen = set()
    # The job queue's worker (`flask worker`) runs it, configured like the app.
    env = {f"FLASK_{key}": str(app.config[key])
           for key in ("REPORT_DIR", "CLASSIFIER_MODEL", "RETRAIN_DATA_DIR", "TORCH_THREADS")}
    with worker(tmp_path, env):
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            job = client.get(f"/api/jobs/{job_id}", headers=AUTH).get_json()["job"]
            seen.add(round(job["progress"], 1))
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(1)
    assert job["status"] == "done", job
    assert job["progress"] == 1.0 and len(seen) >= 3  # progress moved through stages
    assert "is live" in job["message"]
    models = client.get("/api/classifiers", headers=AUTH).get_json()
    assert models["versions"][0]["status"] == "live" and models["serving"] == "retrained version"
    assert identify_model(app, face_crops("tom", 1, seed=42)[0])[0].startswith("classifier-")
    with db.session(app) as s:
        assert gallery.face_counts(s) == {"tom": 6}
