"""Training crops with the outfit recoloured: only the lower part of the crop changes hue, the face
above keeps its colours, and the copy is the same on every run (so its features hit the cache)."""
import numpy as np
import pytest
from PIL import Image

from app.training.classifier_train import OUTFIT_ROWS, TrainConfig, recolour, recoloured

skimage_data = pytest.importorskip("skimage.data")


def test_recolour_turns_the_outfits_hue_and_keeps_the_face():
    crop = Image.fromarray(skimage_data.astronaut()[0:200, 100:300])
    crop.info["crop_kind"] = "drawn"
    out = recolour(crop, np.random.default_rng(0))
    assert out.size == crop.size and out.info["crop_kind"] == "drawn"
    before, after = np.asarray(crop.convert("HSV")), np.asarray(out.convert("HSV"))
    face_rows = int(200 * (1 - OUTFIT_ROWS))
    # Above the outfit band nothing moves but HSV round-off.
    assert np.abs(np.asarray(out, np.int16)[:face_rows - 2] - np.asarray(crop, np.int16)[:face_rows - 2]).max() <= 3
    # In the band, saturated pixels get another hue (by 60-300 degrees, on PIL's 0-255 circle).
    band = (slice(face_rows + 12, None), slice(None))
    coloured = before[band][..., 1] > 80
    turn = (after[band][..., 0].astype(int) - before[band][..., 0].astype(int)) % 256
    assert coloured.sum() > 100 and np.median(turn[coloured]) > 40


def test_recoloured_copies_repeat_and_config_default_is_off():
    crop = Image.fromarray(skimage_data.coffee()[100:260, 200:360])
    a, b = recoloured([(crop, "x")]), recoloured([(crop, "x")])
    assert np.array_equal(np.asarray(a[0][0]), np.asarray(b[0][0])) and a[0][1] == "x"
    assert TrainConfig().recolour == 0
