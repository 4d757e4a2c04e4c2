"""Choosing the cutout model: IS-Net by default, U2-NetP per request, both served by ONNX Runtime."""
import io

import numpy as np
from conftest import encode, needs_cutout, needs_isnet, needs_isnet_anime, needs_u2netp_anime
from PIL import Image

from app import create_app


@needs_isnet
@needs_isnet_anime
@needs_cutout
def test_default_is_isnet_anime_and_a_request_may_choose_another(tmp_path, demo_picture):
    # Three kept loaded (the default keeps 2): the check below counts every model it asked for.
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path), "TORCH_THREADS": 1, "CUTOUT_MODELS_LOADED": 3})
    client = app.test_client()
    listed = client.get("/api/models").get_json()["cutout"]
    assert [m["name"] for m in listed][:1] == ["isnet-anime"] and listed[0]["default"] is True
    assert {"isnet-anime", "isnet-general", "demo-cutout"} <= {m["name"] for m in listed}

    path, comp = demo_picture
    truth = comp.mask >= 128

    def mask(query=""):
        picture = {"image": (io.BytesIO(path.read_bytes()), "p.png")}
        response = client.post(f"/api/cutout?output=mask{query}", data=picture)
        assert response.status_code == 200, response.data
        return np.asarray(Image.open(io.BytesIO(response.data))) >= 128

    def iou(pred):
        return (pred & truth).sum() / (pred | truth).sum()

    default, fast, general = mask(), mask("&model=demo-cutout"), mask("&model=isnet-general")
    assert iou(default) > 0.8 and iou(fast) > 0.8 and iou(general) > 0.8  # all find the two characters
    assert not np.array_equal(default, fast) and not np.array_equal(default, general)  # three networks
    assert np.array_equal(mask("&model=isnet-anime"), default)
    loaded = [slot for slot in app.extensions["models"]["models"] if slot.startswith("cutout")]
    # naming the default loads no second copy
    assert sorted(loaded) == ["cutout", "cutout:demo-cutout", "cutout:isnet-general"]


def test_an_unknown_model_is_a_clear_400(client):
    for name in ("nope", "../models/demo-cutout", "demo-classifier"):
        response = client.post(f"/api/cutout?model={name}",
                               data={"image": (io.BytesIO(encode(np.zeros((20, 20, 3), np.uint8))), "p.png")})
        assert response.status_code == 400, name
        error = response.get_json()["error"]
        assert error["code"] == "unknown_model" and "choose one of" in error["message"]


@needs_u2netp_anime
def test_the_distilled_fast_model_serves_by_name_and_its_card_names_its_teacher(tmp_path, demo_picture):
    import json

    from conftest import MODELS
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path), "TORCH_THREADS": 1})
    client = app.test_client()
    listed = {m["name"]: m for m in client.get("/api/models").get_json()["cutout"]}
    assert "u2netp-anime" in listed
    path, comp = demo_picture
    picture = {"image": (io.BytesIO(path.read_bytes()), "p.png")}
    response = client.post("/api/cutout?output=mask&model=u2netp-anime", data=picture)
    assert response.status_code == 200, response.data
    pred, truth = np.asarray(Image.open(io.BytesIO(response.data))) >= 128, comp.mask >= 128
    assert (pred & truth).sum() / (pred | truth).sum() > 0.8
    card = json.loads((MODELS / "u2netp-anime" / "card.json").read_text())
    assert card["architecture"] == "u2netp" and card["training"]["config"]["teacher_weight"] == 0.5
    assert set(card["metrics"]["sets"]) == {"live2d-characters", "live2d-poses", "demo-cast", "portraits-dev"}
