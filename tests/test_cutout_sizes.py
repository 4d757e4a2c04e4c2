"""Issue 32, item 2: a cutout worked on a smaller copy says so. /api/cutout answers the size as
sent and the size worked on (X-Source-Size, X-Output-Size); full=1 works on up to
MAX_CUTOUT_FULL_PIXELS where the operator allows it, and on MAX_CUTOUT_PIXELS otherwise."""
import io

import numpy as np
import pytest
from conftest import encode, needs_cutout
from PIL import Image

from app import create_app


def make_client(tmp_path, **config):
    # demo-cutout: the fast model; the sizes are the API's, whatever the network.
    return create_app({"TESTING": True, "TORCH_THREADS": 1, "REPORT_DIR": str(tmp_path / "reports"),
                       "CUTOUT_MODEL": "demo-cutout", "MAX_CUTOUT_PIXELS": 500_000, **config}).test_client()


def cut(client, picture, query=""):
    response = client.post("/api/cutout" + query, data={"image": (io.BytesIO(picture), "p.jpg")})
    assert response.status_code == 200, response.get_json()
    with Image.open(io.BytesIO(response.data)) as out:
        return out.size, response.headers


PICTURE = encode(np.random.default_rng(3).integers(0, 255, (900, 1200, 3), np.uint8), "JPEG")


@needs_cutout
def test_sizes_are_told_and_full_size_only_where_allowed(tmp_path):
    client = make_client(tmp_path)
    size, headers = cut(client, PICTURE)
    assert size == (816, 612)  # 1200 x 900 scaled into 500,000 pixels
    assert headers["X-Source-Size"] == "1200x900" and headers["X-Output-Size"] == "816x612"
    # Full size asked for where the operator allows none: the same bounded answer, said so.
    size, headers = cut(client, PICTURE, "?full=1")
    assert size == (816, 612) and headers["X-Output-Size"] == "816x612"

    allowing = make_client(tmp_path, MAX_CUTOUT_FULL_PIXELS=2_000_000)
    assert cut(allowing, PICTURE)[0] == (816, 612)  # the default stays within MAX_CUTOUT_PIXELS
    size, headers = cut(allowing, PICTURE, "?full=1")
    assert size == (1200, 900) and headers["X-Output-Size"] == headers["X-Source-Size"] == "1200x900"
    # The mask answers the same sizes.
    size, headers = cut(allowing, PICTURE, "?output=mask")
    assert size == (816, 612) and headers["X-Output-Size"] == "816x612"


@needs_cutout
@pytest.mark.parametrize("value", ["2", "yes", ""])
def test_full_takes_only_0_or_1(tmp_path, value):
    response = make_client(tmp_path).post(f"/api/cutout?full={value}",
                                          data={"image": (io.BytesIO(PICTURE), "p.jpg")})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "bad_option"
