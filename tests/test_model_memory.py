"""Memory for cutout models is bounded (issue 28, item 7): a worker keeps at most CUTOUT_MODELS_LOADED
cutout models, the least recently used unloaded first, whatever `?model=` anonymous requests ask for."""
import gc
import io
import weakref

import numpy as np
from conftest import encode, needs_cutout, needs_u2netp_anime

from app import create_app
from app.serving import registry


def cut(client, model=None):
    picture = encode(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    url = "/api/cutout?output=mask" + (f"&model={model}" if model else "")
    response = client.post(url, data={"image": (io.BytesIO(picture), "p.png")})
    assert response.status_code == 200, response.data
    return response


def loaded_cutouts(app):
    state = app.extensions["models"]
    return sorted(slot for slot in state["models"] if slot == "cutout" or slot.startswith("cutout:"))


@needs_cutout
@needs_u2netp_anime
def test_a_worker_keeps_at_most_the_configured_cutout_models(tmp_path):
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "r"), "CUTOUT_MODEL": "demo-cutout",
                      "TORCH_THREADS": 1, "CUTOUT_MODELS_LOADED": 1})
    client = app.test_client()
    cut(client)
    assert loaded_cutouts(app) == ["cutout"]
    first = weakref.ref(app.extensions["models"]["models"]["cutout"])
    cut(client, "u2netp-anime")
    assert loaded_cutouts(app) == ["cutout:u2netp-anime"]  # the default was unloaded to make room
    gc.collect()
    assert first() is None  # and its memory released: nothing else holds it
    cut(client)  # asked for again: loaded again, the other one unloaded
    assert loaded_cutouts(app) == ["cutout"]


@needs_cutout
@needs_u2netp_anime
def test_the_least_recently_used_model_is_the_one_unloaded(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("demo-cutout", "u2netp-anime"):
        (models / name).symlink_to(registry.ROOT / "models" / name)
    (models / "third").symlink_to(registry.ROOT / "models" / "demo-cutout")  # a third choice
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "r"), "MODEL_DIR": str(models),
                      "CUTOUT_MODEL": "demo-cutout", "TORCH_THREADS": 1, "CUTOUT_MODELS_LOADED": 2})
    client = app.test_client()
    cut(client)
    cut(client, "u2netp-anime")
    cut(client)  # the default is used again: u2netp-anime is now the least recent
    cut(client, "third")
    assert loaded_cutouts(app) == ["cutout", "cutout:third"]
