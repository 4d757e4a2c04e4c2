"""Live2D figures on the cutout side: the held-out sets live2d-characters and live2d-poses, and the
training stream's `live2d` share, all on the renders' own split (Haruto held out whole; of the
others, poses ending in 8 validate and 9 test).

The first tests run on small stand-in renders written here; the rest on the real renders in
.cache/live2d (`flask --app wsgi demo render`), skipped with that reason when they are missing.
"""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, model_present
from PIL import Image

from app.demo_data import compose, live2d, renpy_cast, stream
from app.demo_data.live2d.renderer import figure_name
from app.training.cutout_data import Batcher

needs_cast = pytest.mark.skipif(not renpy_cast.is_fetched(),
                                reason="demo cast not fetched (scripts/setup.sh does it)")


def _every_figure_rendered():
    return all(any((live2d.DEFAULT_CACHE / figure_name(*key)).glob("[0-9]*.json")) for key in live2d.FIGURES)


needs_renders = pytest.mark.skipif(
    not _every_figure_rendered(),
    reason=f"no Live2D renders of every figure in {live2d.DEFAULT_CACHE}: run `{live2d.RENDER_COMMAND}` "
           f"(after `{live2d.SETUP_COMMAND}`)")
LIVE2D_SETS = ("live2d-characters", "live2d-poses")


def _fake_renders(cache_dir, figures, pose_ids):
    """Stand-in renders: an opaque block with a soft edge, and its metadata, per figure and pose."""
    rgba = np.zeros((60, 40, 4), np.uint8)
    rgba[10:50, 5:35] = (200, 100, 50, 255)
    rgba[10:50, 35] = (200, 100, 50, 128)
    for character, outfit in figures:
        folder = cache_dir / figure_name(character, outfit)
        folder.mkdir(parents=True)
        for pose_id in pose_ids:
            Image.fromarray(rgba).save(folder / f"{pose_id:04d}.png")
            meta = {"character": character, "outfit": outfit, "expression": "smile", "pose_id": pose_id,
                    "face_box": [10, 12, 20, 20], "alpha_box": [5, 10, 36, 50]}
            (folder / f"{pose_id:04d}.json").write_text(json.dumps(meta))


def _pose(key):
    """(character, pose number) of a Live2D figure key, e.g. "haru-01 #0019" -> ("haru", 19)."""
    figure, pose = re.fullmatch(r"(.+) #(\d{4})", key).groups()
    return figure.split("-")[0], int(pose)


@needs_cast
def test_held_out_composites_take_only_their_split(tmp_path):
    _fake_renders(tmp_path, [("haruto", "default"), ("shizuku", "default")], (3, 8, 9, 19))
    characters = list(live2d.composites("test_character", 20, cache_dir=tmp_path))
    poses = list(live2d.composites("test_pose", 20, cache_dir=tmp_path))
    assert {k for c in characters for k in c.figures} == {f"haruto-default #{i:04d}" for i in (3, 8, 9, 19)}
    assert {k for c in poses for k in c.figures} == {"shizuku-default #0009", "shizuku-default #0019"}
    assert {c.background for c in characters + poses} <= {"lecturehall", "uni", "synthetic"}
    assert [k.key for k in live2d.require(tmp_path, "train")] == ["shizuku-default #0003"]
    # Validation pictures: the val poses (ending in 8) over the val photo, never a test one.
    val = list(live2d.composites("val", 10, cache_dir=tmp_path))
    assert {k for c in val for k in c.figures} == {"shizuku-default #0008"}
    assert {c.background for c in val} <= {"whitehouse", "synthetic"}
    with pytest.raises(ValueError, match="test_character, test_pose, val"):
        list(live2d.composites("train", 2, cache_dir=tmp_path))


def test_missing_renders_name_the_render_command(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="flask --app wsgi demo render"):
        live2d.require(tmp_path, "train")  # nothing rendered
    _fake_renders(tmp_path, [("haruto", "default")], (0, 1))
    with pytest.raises(FileNotFoundError, match="test_pose split .*flask --app wsgi demo render"):
        live2d.require(tmp_path, "test_pose")  # rendered in part: Haruto only
    monkeypatch.setattr(live2d, "DEFAULT_CACHE", tmp_path)
    with pytest.raises(FileNotFoundError, match="flask --app wsgi demo render"):
        stream.heldout_items("live2d-poses", 4)
    if renpy_cast.is_fetched():
        with pytest.raises(FileNotFoundError, match="train split .*flask --app wsgi demo render"):
            stream.demo_stream(stream.MixConfig(live2d=0.3), 64)


def test_the_sets_are_listed_and_described():
    assert set(LIVE2D_SETS) <= set(stream.HELDOUT_SETS)
    characters = stream.describe_heldout("live2d-characters", 60)
    poses = stream.describe_heldout("live2d-poses", 60)
    assert "60 composites" in characters and "haruto" in characters and "held out whole" in characters
    assert "other than haruto" in poses and "% 10 == 9" in poses and "lecturehall, uni" in poses
    with pytest.raises(ValueError, match="live2d-characters, live2d-poses"):
        stream.heldout_items("live2d-everything")


@needs_cast
@needs_renders
def test_held_out_sets_hold_no_training_pose_and_no_training_character():
    train_keys = {f.key for f in live2d.load(live2d.DEFAULT_CACHE, "train")}
    assert train_keys and all(live2d.split_of(*_pose(k)) == "train" for k in train_keys)
    for name in LIVE2D_SETS:
        comps = stream.heldout_composites(name)
        keys = {k for c in comps for k in c.figures}
        assert len(comps) == 60 and keys and not keys & train_keys
        assert {c.background for c in comps} <= {"lecturehall", "uni", "synthetic"}  # test photos
        if name == "live2d-characters":
            assert {_pose(k)[0] for k in keys} == set(live2d.HELD_OUT_CHARACTERS)
            assert len(keys) > 30  # many of Haruto's poses, not a few
        else:
            assert not {_pose(k)[0] for k in keys} & set(live2d.HELD_OUT_CHARACTERS)
            assert all(pose % live2d.POSE_FOLDS == 9 for _, pose in map(_pose, keys))
            assert {k.split(" #")[0] for k in keys} == {figure_name(*f) for f in live2d.FIGURES
                                                         if f[0] not in live2d.HELD_OUT_CHARACTERS}
        groups = {g for _, _, item_groups in stream.heldout_items(name) for g in item_groups}
        assert {g for g in groups if g.startswith("figure ")} == {f"figure {k.split(' #')[0]}" for k in keys}
        assert any(g.startswith("background ") for g in groups)


@needs_cast
@needs_renders
def test_training_stream_draws_only_training_poses_never_haruto():
    mixed = stream.demo_stream(stream.MixConfig(live2d=1.0), 64, seed=3)
    (share, figures), = mixed.others
    metas = [json.loads(path.read_text()) for path in live2d.DEFAULT_CACHE.glob("*/[0-9]*.json")]
    training = [m for m in metas if m["character"] != "haruto" and m["pose_id"] % 10 < 8]
    assert share == 1.0 and len(figures) == len(training)  # every figure but Haruto, poses 0-7 of each ten
    assert all(live2d.split_of(f.character, f.meta["pose_id"]) == "train" for f in figures)
    drawn = [k for _ in range(40) for k in mixed.composite().figures]
    assert drawn and all(live2d.split_of(*_pose(k)) == "train" for k in drawn)
    assert not {_pose(k)[0] for k in drawn} & set(live2d.HELD_OUT_CHARACTERS)
    x, y = Batcher(mixed.pair, 64).batch(2)
    assert x.shape == (2, 3, 64, 64) and y.shape == (2, 1, 64, 64)


@needs_cast
@needs_renders
@pytest.mark.parametrize("name", LIVE2D_SETS)
def test_masks_are_the_render_alpha(name, monkeypatch):
    """Each set composed twice, once over black and once over white (the same draws otherwise):
    the difference of the two pictures is what the renders' alpha covers, and must be the mask."""
    renders = {f.key: f for f in live2d.load(live2d.DEFAULT_CACHE, stream.LIVE2D_HELDOUT[name])}
    for figure in list(renders.values())[:5]:  # the figures are the render files' own pixels
        with Image.open(live2d.DEFAULT_CACHE / figure.key.split(" #")[0]
                        / f"{figure.meta['pose_id']:04d}.png") as png:
            x0, y0, x1, y1 = figure.meta["alpha_box"]
            assert np.array_equal(figure.rgba, np.asarray(png.convert("RGBA"))[y0:y1, x0:x1])

    def over(value):
        crop, synthetic = compose.photo_crop, compose.synthetic_background
        monkeypatch.setattr(compose, "photo_crop", lambda *a: np.full_like(crop(*a), value))
        monkeypatch.setattr(compose, "synthetic_background", lambda *a: np.full_like(synthetic(*a), value))
        comps = stream.heldout_composites(name, 30)
        monkeypatch.undo()
        return comps

    black, white = over(0), over(255)
    for b, w in zip(black, white):
        assert b.figures == w.figures and np.array_equal(b.mask, w.mask)
        covered = 255 - (w.image.astype(int) - b.image.astype(int)).mean(axis=2)
        err = np.abs(covered - b.mask)
        assert (b.mask == 255).sum() > 1000 and (b.mask == 0).sum() > 1000
        assert err.max() <= 2, (b.figures, err.max())  # rounding only


@needs_cast
@needs_renders
@pytest.mark.skipif(not model_present("demo-cutout"), reason="models/demo-cutout not installed")
def test_evaluate_cutout_scores_a_live2d_set_per_figure(tmp_path):
    from app import create_app
    runner = create_app({"TESTING": True}).test_cli_runner()
    result = runner.invoke(args=["evaluate", "cutout", str(ROOT / "models" / "demo-cutout"), "live2d-poses",
                                 "--count", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["count"] == 2 and any(g.startswith("figure ") for g in report["groups"])


@pytest.mark.skipif(not (ROOT / "models" / "demo-cutout" / "model.onnx").is_file(),
                    reason="models/demo-cutout has no ONNX export (python -m app.build.cutout_export)")
def test_eval_script_scores_a_folder_of_pairs(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:40, 20:44] = (230, 40, 90)
    mask = (image[..., 0] > 0).astype(np.uint8) * 255
    Image.fromarray(image).save(tmp_path / "pairs" / "images" / "a.png")
    Image.fromarray(mask).save(tmp_path / "pairs" / "masks" / "a.png")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "eval_cutout_onnx.py"),
                          str(ROOT / "models" / "demo-cutout"), str(tmp_path / "pairs"), "--time-reps", "0",
                          "--threads", "1", "--out", str(tmp_path / "eval")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["count"] == 1 and 0.0 <= result["iou"] <= 1.0 and "1 held-out pairs" in result["heldout"]
    assert (tmp_path / "eval" / "worst.png").is_file()
