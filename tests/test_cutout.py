"""The cutout service on the shipped demo model: sizes, alpha = mask, boxes, post-processing."""
import numpy as np
import pytest
from PIL import Image

from app.inference.cutout import Cutter, postprocess
from tests.conftest import MODELS, demo_picture_array


@pytest.fixture(scope="module")
def cutter():
    return Cutter.load(MODELS / "demo-cutout")


def test_cutout_is_rgba_of_the_input_size_with_the_mask_as_alpha(cutter):
    comp = demo_picture_array()
    image = Image.fromarray(comp.image[:301, :457])  # odd size: no rounding to the network's input
    out = cutter.cutout(image)
    assert out.mode == "RGBA" and out.size == image.size
    mask = cutter.mask(image)
    assert mask.dtype == np.uint8 and mask.shape == (301, 457)
    assert np.array_equal(np.asarray(out)[..., 3], mask)
    assert np.array_equal(np.asarray(out)[..., :3], comp.image[:301, :457])


def test_the_character_is_kept_and_the_background_removed(cutter):
    comp = demo_picture_array()
    mask = cutter.mask(Image.fromarray(comp.image)) >= 128
    truth = comp.mask >= 128
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.6


def test_a_box_limits_the_cutout(cutter):
    comp = demo_picture_array()
    h, w = comp.mask.shape
    mask = cutter.mask(Image.fromarray(comp.image), box=(0, 0, w // 2, h))
    assert mask[:, w // 2:].max() == 0
    with pytest.raises(ValueError):
        cutter.mask(Image.fromarray(comp.image), box=(w + 5, 0, 10, 10))


def test_existing_transparency_is_kept(cutter):
    rgba = np.zeros((64, 80, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, :40, 3] = 255  # right half already transparent
    out = np.asarray(cutter.cutout(Image.fromarray(rgba, "RGBA")))
    assert out[:, 40:, 3].max() == 0


def test_postprocess_switches():
    prob = np.zeros((40, 40), np.float32)
    prob[5:25, 5:25] = 0.9  # the character
    prob[30:33, 30:33] = 0.8  # a speck
    prob[14, 14] = 0.2  # a pinhole
    prob[0, :] = np.linspace(0, 1, 40)  # a ramp along the top row
    raw = postprocess(prob, alpha="raw")
    assert raw[10, 10] == round(0.9 * 255) and raw[14, 14] == round(0.2 * 255)
    soft = postprocess(prob)  # 0 up to 0.25, 255 from 0.75, a straight ramp between
    assert soft[10, 10] == 255 and soft[14, 14] == 0 and soft[39, 39] == 0 and soft[31, 31] == 255
    assert np.array_equal(soft[0], np.rint(np.clip((prob[0] - 0.25) / 0.5, 0, 1) * 255))
    hard = postprocess(prob, alpha="hard")
    assert set(np.unique(hard)) <= {0, 255}
    largest = postprocess(prob, alpha="hard", largest_component=True)
    assert largest[31, 31] == 0 and largest[10, 10] == 255
    cleaned = postprocess(prob, alpha="hard", clean=True)
    assert cleaned[14, 14] == 255 and cleaned[31, 31] == 0
    with pytest.raises(ValueError):
        postprocess(prob, alpha="half")
