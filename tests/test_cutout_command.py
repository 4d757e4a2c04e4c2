"""`flask cutout IN OUT`: one PNG per picture, a bad file reported without stopping, reruns skip."""
import numpy as np
from conftest import needs_cutout, read_image
from PIL import Image

from app import create_app


@needs_cutout
def test_batch_cutout_writes_one_png_per_picture_and_goes_past_a_bad_file(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(src / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)).save(src / "sub" / "b.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (src / "notes.txt").write_text("not a picture")
    runner = create_app({"TESTING": True, "CUTOUT_MODEL": "demo-cutout", "TORCH_THREADS": 1}).test_cli_runner()

    result = runner.invoke(args=["cutout", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "sub/b.png"]
    assert "broken.png" in result.output and "2 cut out, 0 already done, 1 failed" in result.output
    cut = read_image(out / "a.png")
    assert cut.mode == "RGBA" and cut.size == (80, 60)
    assert not list(out.rglob(".tmp-*"))

    again = runner.invoke(args=["cutout", str(src), str(out), "--mask"])
    assert "0 cut out, 2 already done" in again.output  # done pictures are skipped

    masks = runner.invoke(args=["cutout", str(src), str(tmp_path / "masks"), "--mask", "--model", "demo-cutout"])
    assert masks.exit_code == 0 and read_image(tmp_path / "masks" / "sub" / "b.png").mode == "L"
    unknown = runner.invoke(args=["cutout", str(src), str(out), "--model", "nope"])
    assert unknown.exit_code == 1 and "Traceback" not in unknown.output
