"""Several views of one face crop: the central squares lie inside the crop, a head trained on the mean
of their features is served on exactly that mean (through /api/identify as well), and a card naming
a view this code lacks is refused."""
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from app import create_app
from app.build.backbones import load_backbone
from app.demo_data import renpy_cast
from app.inference import crop_views
from app.inference.identify import Identifier, classifier_card
from app.inference.open_set import shared_scale
from app.storage import db
from app.storage.model_dirs import ModelError, write_model_dir
from app.training import crop_kinds, demo_faces
from app.training.face_dataset import UNKNOWN_LABEL, load_folder
from app.training.feature_cache import FeatureCache

skimage_data = pytest.importorskip("skimage.data")
needs_cast = pytest.mark.skipif(not renpy_cast.is_fetched(),
                                reason="demo cast not fetched (scripts/setup.sh does it)")
VIEWS = ["box", "square", "square80"]


def test_views_are_central_squares_inside_the_crop():
    photo = skimage_data.astronaut()
    crop = Image.fromarray(photo[100:220, 150:250])  # 100 wide, 120 high: an oblong drawn box
    assert crop_views.view(crop, "box") is crop
    square = crop_views.view(crop, "square")
    assert square.size == (100, 100)
    assert np.array_equal(np.asarray(square), photo[110:210, 150:250])
    tight = crop_views.view(crop, "square80")
    assert tight.size == (80, 80)
    assert np.array_equal(np.asarray(tight), photo[120:200, 160:240])


def test_averaged_features_are_the_mean_over_views_and_one_view_is_the_crops_own():
    photo = skimage_data.coffee()
    crops = [Image.fromarray(photo[0:90, 0:60]), Image.fromarray(photo[50:100, 100:200])]

    def featurize(images):  # a stand-in for a backbone: each view's mean colour and size
        return np.array([[*np.asarray(im, np.float64).mean((0, 1)), im.width, im.height] for im in images])

    assert np.array_equal(crop_views.averaged_features(crops, ("box",), featurize), featurize(crops))
    got = crop_views.averaged_features(crops, tuple(VIEWS), featurize)
    want = np.mean([featurize([crop_views.view(im, v) for im in crops]) for v in VIEWS], axis=0)
    assert np.allclose(got, want, atol=1e-4)
    assert got[0, 3] == pytest.approx((60 + 60 + 48) / 3)  # widths of the three views of a 60 x 90 crop


@pytest.mark.parametrize("views", [["box", "zoom"], ["square", "box"], ["box", "box"]])
def test_a_card_with_views_this_code_lacks_is_refused(views, tmp_path):
    backbone = load_backbone("efficientnet_lite0")
    card = classifier_card("odd-views", backbone, ["a", "b"], 0.5, training={}, crop_views=views)
    head = torch.nn.Linear(backbone.feature_dim, 2)
    write_model_dir(tmp_path / "m", card, head.state_dict(), weights_name="weights.npz")
    with pytest.raises(ModelError, match="crop_views"):
        Identifier.load(tmp_path / "m")


@pytest.fixture(scope="module")
def views_model(tmp_path_factory):
    """A head trained by `flask train classifier --crop-views box,square,square80` on a small demo face set."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("views")
    data = root / "faces"
    demo_faces.build_demo_faces(data, {"train": 10, "val": 8, "test": 6}, seed=0, kinds=crop_kinds.KINDS,
                                non_face_share=0.5)
    app = create_app({"TESTING": True, "REPORT_DIR": str(root / "reports"), "TORCH_THREADS": 1})
    result = app.test_cli_runner().invoke(args=[
        "train", "classifier", str(data), "--out", str(root / "model"), "--augment", "0", "--patience", "5",
        "--cache", str(root / "cache"), "--crop-views", ",".join(VIEWS)])
    db.dispose(app)
    assert result.exit_code == 0, result.output
    return data, root / "model", root / "cache"


@needs_cast
def test_a_head_trained_on_averaged_views_is_served_on_the_same_mean(views_model, tmp_path):
    data, model, cache_root = views_model
    card = json.loads((model / "card.json").read_text())
    assert card["crop_views"] == VIEWS and card["training"]["config"]["crop_views"] == ",".join(VIEWS)
    items = [(im, lab) for im, lab in load_folder(data / "test") if lab != UNKNOWN_LABEL][:8]
    images = [im for im, _ in items]
    identifier = Identifier.load(model)
    assert identifier.views == tuple(VIEWS)
    served = [a["predictions"][0]["score"] for a in identifier.identify(images)]

    # What training and calibration measured: the torch backbone's features of each view, averaged.
    cache = FeatureCache(load_backbone("efficientnet_lite0"), cache_root)
    weights = np.load(model / "weights.npz")

    def best_scores(x):
        logits = x.astype(np.float64) @ weights["weight"].T.astype(np.float64) + weights["bias"]
        return shared_scale(identifier.calibration.label_probabilities(logits, x)).max(axis=1)

    measured = best_scores(crop_views.averaged_features(images, VIEWS, cache.features))
    assert np.allclose(served, measured, atol=2e-4)
    # and not the crop's own features alone: the views change the answer.
    assert np.abs(best_scores(cache.features(images)) - measured).max() > 1e-3

    # The app's /api/identify answers the same.
    app = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "reports"), "TORCH_THREADS": 1,
                      "CLASSIFIER_MODEL": str(model)})
    try:
        files = []
        for i, im in enumerate(images):
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            files.append((io.BytesIO(buf.getvalue()), f"{i}.png"))
        response = app.test_client().post("/api/identify", data={"faces": files})
        assert response.status_code == 200, response.data
        over_http = [f["predictions"][0]["score"] for f in response.get_json()["faces"]]
    finally:
        db.dispose(app)
    assert np.allclose(over_http, served, atol=1e-6)
