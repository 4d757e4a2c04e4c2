"""The feature cache: identical features on a second run, recomputed when the weights change."""
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from app.build.backbones import load_backbone
from app.training.feature_cache import FeatureCache, image_key


@pytest.fixture(scope="module")
def crops():
    # Real pictures that ship with scikit-image, cut to face-crop-like squares.
    return [Image.fromarray(skdata.chelsea()).crop((100, 20, 300, 220)),
            Image.fromarray(skdata.astronaut()).crop((150, 20, 350, 220)),
            Image.fromarray(skdata.coffee()).crop((100, 100, 300, 300))]


@pytest.fixture(scope="module")
def backbone():
    torch.set_num_threads(1)
    return load_backbone("efficientnet_lite0")


def test_second_run_reads_identical_features(tmp_path, crops, backbone):
    first = FeatureCache(backbone, tmp_path)
    a = first.features(crops)
    assert (first.hits, first.misses) == (0, 3)
    second = FeatureCache(backbone, tmp_path)  # a new process would start like this
    b = second.features(crops)
    assert (second.hits, second.misses) == (3, 0)
    assert a.dtype == np.float32 and a.shape == (3, backbone.feature_dim)
    assert np.array_equal(a, b)
    # The key is the pixels, not the file: a re-encoded copy of the same pixels hits.
    assert image_key(crops[0].copy()) == image_key(crops[0])
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files left behind"
    stored = list(tmp_path.rglob("*.npy"))
    assert len(stored) == 3
    assert all(backbone.weights_sha256 in str(p) for p in stored)


def test_changed_weights_recompute(tmp_path, crops, backbone):
    base = FeatureCache(backbone, tmp_path).features(crops)
    state = torch.load(backbone.weights_path, map_location="cpu", weights_only=True)
    state["_conv_head.weight"] = state["_conv_head.weight"] * 1.5  # a fine-tuned variant
    changed_path = tmp_path / "changed.pth"
    torch.save(state, changed_path)
    changed = load_backbone("efficientnet_lite0", changed_path)
    assert changed.weights_sha256 != backbone.weights_sha256
    cache = FeatureCache(changed, tmp_path)
    features = cache.features(crops)
    assert (cache.hits, cache.misses) == (0, 3)
    assert not np.allclose(features, base)


def test_a_corrupt_entry_is_recomputed(tmp_path, crops, backbone):
    cache = FeatureCache(backbone, tmp_path)
    good = cache.features(crops[:1])
    cache.path(image_key(crops[0])).write_bytes(b"cut short")
    again = FeatureCache(backbone, tmp_path)
    assert np.array_equal(again.features(crops[:1]), good)
    assert again.misses == 1
