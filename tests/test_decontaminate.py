"""Edge colour decontamination: soft edges lose the old background's colour, nothing else moves."""
import io

import numpy as np
import pytest
from conftest import encode, needs_cutout
from PIL import Image

from app.inference.decontaminate import decontaminate, edge_colour_error


def _soft_disc(size=120, figure=(30, 60, 220), background=(255, 140, 0)):
    """(the picture of a blue disc with a soft edge over orange, its alpha, the disc's true colours)."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    alpha = np.clip((40 - r) / 8, 0, 1)  # 8 px soft edge
    fg = np.broadcast_to(np.array(figure, np.float32), (size, size, 3))
    shown = fg * alpha[..., None] + np.array(background, np.float32) * (1 - alpha[..., None])
    rgba = np.dstack([np.rint(shown), np.rint(alpha * 255)]).astype(np.uint8)
    return rgba, fg.astype(np.uint8)


def test_soft_edges_take_the_figures_colour_back():
    rgba, truth = _soft_disc()
    cleaned = decontaminate(rgba)
    assert edge_colour_error(rgba, truth) > 40  # orange halo before
    assert edge_colour_error(cleaned, truth) < edge_colour_error(rgba, truth) / 4
    opaque, clear = rgba[..., 3] == 255, rgba[..., 3] == 0
    assert np.array_equal(cleaned[opaque], rgba[opaque]) and np.array_equal(cleaned[clear], rgba[clear])
    assert np.array_equal(cleaned[..., 3], rgba[..., 3])  # the alpha is never touched


@needs_cutout
def test_cutout_decontaminates_by_default_and_can_be_asked_not_to(client):
    rgba, _ = _soft_disc(160)
    picture = encode(rgba[..., :3])

    def cut(query):
        response = client.post(f"/api/cutout{query}", data={"image": (io.BytesIO(picture), "p.png")})
        assert response.status_code == 200, response.data
        return np.asarray(Image.open(io.BytesIO(response.data)).convert("RGBA"))

    plain, cleaned = cut("?decontaminate=0"), cut("")
    assert np.array_equal(plain[..., :3], rgba[..., :3])  # the picture's own colours, untouched
    assert np.array_equal(plain[..., 3], cleaned[..., 3])
    soft = (cleaned[..., 3] > 12) & (cleaned[..., 3] < 243)
    if soft.any():  # where the model's edge is soft, its colours changed, and only there
        assert not np.array_equal(plain[soft, :3], cleaned[soft, :3])
    hard = (cleaned[..., 3] == 255) | (cleaned[..., 3] == 0)
    assert np.array_equal(plain[hard, :3], cleaned[hard, :3])


@pytest.mark.parametrize("value", ["2", "yes", ""])
def test_decontaminate_takes_0_or_1(client, value):
    response = client.post(f"/api/cutout?decontaminate={value}",
                           data={"image": (io.BytesIO(encode(np.zeros((20, 20, 3), np.uint8))), "p.png")})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_option"
