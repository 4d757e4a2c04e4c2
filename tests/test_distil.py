"""Distillation: a pool holds each composite with its exact mask and the teacher's map, resumes
exactly, and trains a student on targets blended from both (`flask train pool`, `train cutout`)."""
import json

import numpy as np
import pytest
from conftest import ROOT, needs_cutout
from PIL import Image

from app.demo_data import renpy_cast
from app.training import cutout_data
from app.training.distil import KINDS, PoolConfig, build_pool

needs_cast = pytest.mark.skipif(not renpy_cast.is_fetched(),
                                reason="demo-cast art not fetched (`flask --app wsgi demo fetch`)")
TEACHER = str(ROOT / "models" / "demo-cutout")  # small and fast; the recipe's teacher is isnet-anime


def _read(path):
    return np.asarray(Image.open(path))


@needs_cast
@needs_cutout
def test_pool_keeps_mask_and_teacher_map_and_resumes_to_the_same_pictures(tmp_path):
    from app.inference.cutout import Cutter
    cfg = PoolConfig(teacher=TEACHER, count=3, size=64, threads=1)
    out = build_pool(cfg, tmp_path / "pool", log=lambda m: None)
    for kind in KINDS:
        assert sorted(p.name for p in (out / kind).iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert json.loads((out / "pool.json").read_text())["done"] is True
    image, mask, soft = (_read(out / kind / "00000.png") for kind in KINDS)
    assert image.shape[:2] == mask.shape == soft.shape and 100 <= image.shape[0] <= 200
    assert set(np.unique(mask)) - {0} and (mask == 0).any()  # a figure on a background
    expected = Cutter.load(TEACHER).probability(image)
    assert np.abs(soft.astype(float) - expected * 255).max() <= 1.0

    before = {kind: (out / kind / "00001.png").read_bytes() for kind in KINDS}
    (out / "teacher" / "00001.png").unlink()  # as if stopped between the files of picture 1
    (out / "images" / "00002.png").unlink()
    lines = []
    build_pool(PoolConfig(teacher=TEACHER, count=4, size=64, threads=1), out, log=lines.append)
    assert "resuming: 1 of 4" in lines[0]
    assert {kind: (out / kind / "00001.png").read_bytes() for kind in KINDS} == before
    assert all((out / kind / "00003.png").is_file() for kind in KINDS)

    with pytest.raises(ValueError, match="other settings"):
        build_pool(PoolConfig(teacher=TEACHER, count=4, size=64, seed=1, threads=1), out)


@pytest.fixture
def pool_folder(tmp_path):
    """A hand-made pool: squares, their masks, and a 'teacher' that says the opposite."""
    for kind in KINDS:
        (tmp_path / kind).mkdir()
    for i in range(6):
        mask = np.zeros((48, 48), np.uint8)
        mask[8 + i:32 + i, 10:30] = 255
        image = np.full((48, 48, 3), 40, np.uint8)
        image[mask > 0] = (200, 90, 30)
        Image.fromarray(image).save(tmp_path / "images" / f"{i:05d}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{i:05d}.png")
        Image.fromarray(255 - mask).save(tmp_path / "teacher" / f"{i:05d}.png")
    return tmp_path


def test_targets_blend_the_mask_with_the_teacher_map_by_its_weight(pool_folder):
    masks = [m for _, m in cutout_data.FolderPairs(pool_folder).pairs]
    assert set(np.unique(masks)) == {0, 255}  # no weight: the exact masks
    quarter = [m for _, m in cutout_data.FolderPairs(pool_folder, teacher_weight=0.25).pairs]
    assert set(np.unique(quarter)) == {64, 191}  # 0.75 * 255 + 0.25 * 0 and 0.25 * 255
    assert all(((q == 191) == (m == 255)).all() for q, m in zip(quarter, masks))

    (pool_folder / "teacher" / "00003.png").unlink()
    with pytest.raises(FileNotFoundError, match="needs a teacher map for every pair; 1 missing"):
        cutout_data.FolderPairs(pool_folder, teacher_weight=0.5)


def test_train_command_distils_from_a_pool_and_records_the_weight(pool_folder, tmp_path):
    from app import create_app
    runner = create_app({"TESTING": True}).test_cli_runner()
    run = tmp_path / "run"
    args = ["train", "cutout", str(pool_folder), "--size", "32", "--batch", "2", "--steps", "2",
            "--eval-every", "2", "--eval-count", "2", "--threads", "1", "--teacher-weight", "0.5",
            "--run-dir", str(run)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["teacher_weight"] == 0.5
    (pool_folder / "pool.json").write_text(json.dumps({"teacher": "models/some-teacher", "count": 6}))
    result = runner.invoke(args=args + ["--out", str(tmp_path / "student")])  # done: exports only
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "student" / "card.json").read_text())
    assert card["training"]["distilled_from"]["teacher"] == "models/some-teacher"

    (pool_folder / "teacher" / "00000.png").unlink()
    bad = runner.invoke(args=args)
    assert bad.exit_code == 1 and "needs a teacher map for every pair" in bad.output

    bad = runner.invoke(args=["train", "pool", str(tmp_path / "p"), "--count", "0"])
    assert bad.exit_code == 2 and "--count" in bad.output
