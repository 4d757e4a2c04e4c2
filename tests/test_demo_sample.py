"""Issue 32, the first-visit sample: `flask demo sample` makes the page's sample picture from the
demo cast (never committed), one in which the face detector finds both characters."""
import numpy as np
import pytest
from conftest import DEMO_CACHE
from PIL import Image

from app import create_app
from app.demo_data import sample


@pytest.mark.skipif(not (DEMO_CACHE / "sprites").is_dir(),
                    reason="demo cast not fetched: run `scripts/setup.sh --dev` (flask --app wsgi demo fetch)")
def test_the_sample_is_written_whole_and_shows_two_found_faces(tmp_path):
    from app.inference.faces import detect_faces
    out = tmp_path / "vendor" / sample.SAMPLE_NAME
    runner = create_app({"TESTING": True, "REPORT_DIR": str(tmp_path / "reports")}).test_cli_runner()
    result = runner.invoke(args=["demo", "sample", str(out)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.parent.iterdir()] == [sample.SAMPLE_NAME]  # no partial file left
    with Image.open(out) as picture:
        assert picture.format == "WEBP" and picture.size == sample.SIZE
        assert len(detect_faces(np.asarray(picture.convert("RGB")))) == 2
    # The same picture each time: a setup run twice changes nothing.
    again = tmp_path / "again.webp"
    assert runner.invoke(args=["demo", "sample", str(again)]).exit_code == 0
    assert again.read_bytes() == out.read_bytes()
