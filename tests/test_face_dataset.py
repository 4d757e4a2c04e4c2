"""Face data sets: detection and cropping from images and videos, reports, near-duplicates."""
import shutil
import subprocess

import numpy as np
import pytest
from conftest import read_image
from PIL import Image

from app.demo_data import outsiders
from app.demo_data import renpy_cast as demo_cast
from app.inference import faces
from app.inference.face_crops import crop_face, dhash, hamming
from app.training import demo_faces, face_dataset
from app.training.face_dataset import build_dataset

needs_art = pytest.mark.skipif(not demo_cast.is_fetched() or not faces.cascade_available(),
                               reason="demo-cast art or face cascade missing: run scripts/setup.sh --dev")


def _on_white(sprite, size=(640, 480), x=40):
    """The sprite scaled to the frame's height on white, its left edge at x."""
    canvas = Image.new("RGBA", size, (255, 255, 255, 255))
    img = Image.fromarray(sprite.rgba)
    scale = size[1] / img.height
    img = img.resize((round(img.width * scale), size[1]), Image.LANCZOS)
    canvas.alpha_composite(img, (x, 0))
    return canvas.convert("RGB")


def test_dhash_finds_near_duplicates():
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).resize((256, 256))
    shifted = picture.resize((250, 250)).resize((256, 256))  # same picture, resampled
    other = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).resize((256, 256))
    assert hamming(dhash(picture), dhash(picture)) == 0
    assert hamming(dhash(picture), dhash(shifted)) <= face_dataset.DEFAULT_DUPLICATE_BITS
    assert hamming(dhash(picture), dhash(other)) > 16
    assert 0 <= dhash(picture) < 2 ** 64


def test_crop_face_adds_margin_and_stays_inside():
    rgb = np.zeros((100, 200, 3), np.uint8)
    assert crop_face(rgb, (50, 20, 40, 40), margin=0.25).size == (60, 60)
    assert crop_face(rgb, (0, 0, 40, 40), margin=0.5).size == (60, 60)  # clipped at the corner


@needs_art
def test_video_path_extracts_faces(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: apt-get install ffmpeg")
    eileen = demo_cast.load_sprites(keys=["eileen happy"])[0]
    frames = tmp_path / "frames"
    frames.mkdir()
    # Two seconds with the character on the left, then two with her on the right.
    for i in range(4):
        _on_white(eileen, x=20 if i < 2 else 300).save(frames / f"f{i:02d}.png")
    source = tmp_path / "material"
    (source / "eileen").mkdir(parents=True)
    video = source / "eileen" / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-framerate", "1", "-i",
                    str(frames / "f%02d.png"), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-r", "4",
                    str(video)], check=True)
    assert len(list(face_dataset.video_frames(video, every_s=1.0))) >= 4

    out = tmp_path / "faces"
    stats = build_dataset(out, sources=[source], every_s=1.0)
    crops = sorted((out / "eileen").glob("*.png"))
    # The same face in consecutive frames is one picture: near-duplicates collapse.
    assert 1 <= len(crops) <= 3, stats
    assert stats["duplicates"] >= 1
    crop = read_image(crops[0])
    assert 150 <= crop.width <= 400 and abs(crop.width - crop.height) <= 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".faces")], "staging removed"


@needs_art
def test_folders_reports_and_unlabelled(tmp_path):
    sprites = demo_cast.load_sprites(keys=["eileen happy", "sylvie blue normal"])
    material = tmp_path / "material"
    for sprite in sprites:
        (material / sprite.character).mkdir(parents=True)
        _on_white(sprite).save(material / sprite.character / "a.png")
    (material / "sylvie" / "notes.txt").write_text("not a picture")
    reports = tmp_path / "reports"
    (reports / "lucy").mkdir(parents=True)
    Image.new("RGB", (96, 96), (200, 80, 80)).save(reports / "lucy" / "r1.png")  # crops already

    out = tmp_path / "labelled"
    stats = build_dataset(out, sources=[material], reports=[reports])
    assert stats["labels"] == {"eileen": 1, "sylvie": 1, "lucy": 1}
    assert read_image(next((out / "lucy").glob("*.png"))).size == (96, 96)

    loose = tmp_path / "loose"
    stats = build_dataset(loose, sources=[material], labelled=False)
    assert set(stats["labels"]) == {face_dataset.UNSORTED} and stats["written"] == 2

    with pytest.raises(FileExistsError):
        build_dataset(out, sources=[material])


def test_cli_reports_bad_input_cleanly(runner, tmp_path):
    result = runner.invoke(args=["dataset", "faces", str(tmp_path / "out")])
    assert result.exit_code != 0 and "at least one --from" in result.output
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("taken")
    (tmp_path / "src").mkdir()
    result = runner.invoke(args=["dataset", "faces", str(tmp_path / "out"), "--from", str(tmp_path / "src")])
    assert result.exit_code == 1 and "not empty" in result.output
    assert "Traceback" not in result.output


def test_demo_plan_keeps_validation_expressions_out_of_training():
    train, train_bgs = demo_faces.demo_sprite_plan("train")
    val, val_bgs = demo_faces.demo_sprite_plan("val")
    test, _ = demo_faces.demo_sprite_plan("test")
    assert set(demo_faces.VAL_HELD_OUT_SPRITES) <= set(val)
    assert not set(demo_faces.VAL_HELD_OUT_SPRITES) & set(train)
    assert not set(test) & (set(train) | set(val)) and not set(train_bgs) & set(val_bgs)
    assert {k.split(" ")[0] for k in train} == {"eileen", "lucy", "sylvie"}
    splits = outsiders.OUTSIDER_SPLITS
    assert not set(splits["test"]) & (set(splits["train"]) | set(splits["val"]))
