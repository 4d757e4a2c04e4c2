"""Cutout training tools: the loss goes down, checkpoints resume, metrics give known values."""
import json

import numpy as np
import pytest
import torch
from conftest import read_image
from PIL import Image

from app.nets.u2net import U2NETP
from app.training import cutout_data, cutout_metrics
from app.training.cutout_data import to_tensors
from app.training.cutout_train import CutoutTrainConfig, bce_loss, export_model_dir, train


def run(cfg, run_dir, **kwargs):
    """The trainer on a folder of pairs, as `flask train cutout FOLDER` feeds it."""
    return train(cfg, lambda seed: cutout_data.folder_stream(cfg.data, cfg.size, seed),
                 cutout_data.validation_pairs(cfg.data, cfg.eval_count, cfg.seed), run_dir, **kwargs)


def _pictures(n, size, seed=0):
    """Real picture/mask pairs: a coloured disc or box on a noisy background."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        cx, cy, r = rng.integers(size // 3, 2 * size // 3, 2).tolist() + [size // 4]
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r) if i % 2 else \
            ((abs(xx - cx) < r) & (abs(yy - cy) < r))
        image[mask] = rng.integers(0, 256, 3)
        images.append(image)
        masks.append(mask.astype(np.uint8) * 255)
    return images, masks


@pytest.fixture
def pair_folder(tmp_path):
    images, masks = _pictures(6, 64)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(images, masks)):
        Image.fromarray(image).save(tmp_path / "images" / f"p{i}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"p{i}.png")
    return tmp_path


def test_two_steps_on_a_fixed_batch_lower_the_loss():
    torch.manual_seed(0)
    net = U2NETP().train()
    x, y = to_tensors(*_pictures(2, 64))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = bce_loss(net(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[2] < losses[0]


def test_checkpoint_resumes_from_the_same_step(pair_folder, tmp_path):
    cfg = CutoutTrainConfig(data=str(pair_folder), size=64, batch=2, steps=4, eval_every=2, eval_count=2,
                            threads=1)
    run_dir = tmp_path / "run"
    first = run(cfg, run_dir, log=lambda m: None, stop_after=2)
    assert first["step"] == 2 and (run_dir / "last.pt").exists() and (run_dir / "best.pt").exists()
    messages = []
    second = run(cfg, run_dir, log=messages.append)
    assert "resumed from" in messages[0] and "at step 2" in messages[0]
    assert second["step"] == 4
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one evaluation at step 2, one at step 4: nothing repeated
    assert not list(run_dir.glob(".tmp-*"))
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 4


def test_training_from_official_style_weights_loads_them(tmp_path, pair_folder):
    torch.manual_seed(1)
    init = tmp_path / "u2netp.pth"
    torch.save(U2NETP().state_dict(), init)
    cfg = CutoutTrainConfig(data=str(pair_folder), init=str(init), size=64, batch=2, steps=1,
                            eval_every=1, eval_count=1, threads=1)
    ckpt = run(cfg, tmp_path / "run", log=lambda m: None)
    assert ckpt["step"] == 1


def test_fine_tune_starts_from_a_runs_best_checkpoint_and_the_card_says_so(tmp_path, pair_folder):
    from app.training.cutout_train import build_net
    first = CutoutTrainConfig(data=str(pair_folder), size=64, batch=2, steps=2, eval_every=2,
                              eval_count=1, threads=1)
    run(first, tmp_path / "low", log=lambda m: None)
    best = torch.load(tmp_path / "low" / "best.pt", weights_only=True)
    fine = CutoutTrainConfig(data=str(pair_folder), init=str(tmp_path / "low" / "best.pt"), size=96,
                             batch=2, steps=1, eval_every=1, eval_count=1, threads=1)
    start = build_net(fine).state_dict()
    assert all(torch.equal(start[k], best["model"][k]) for k in start)
    run(fine, tmp_path / "high", log=lambda m: None)
    card = export_model_dir(tmp_path / "high" / "best.pt", tmp_path / "model", "model")
    assert card["input_size"] == 96
    assert card["training"]["initialised_from"]["steps"] == 2
    assert card["training"]["initialised_from"]["config"]["size"] == 64


def test_hue_shift_turns_red_into_green_and_a_full_turn_changes_nothing():
    from app.demo_data.compose import shift_hue
    red = Image.new("RGB", (4, 4), (200, 30, 30))
    r, g, b = shift_hue(red, 1 / 3).getpixel((0, 0))
    assert g > 150 and r < 60 and b < 60
    assert np.abs(np.asarray(shift_hue(red, 1.0), int) - np.asarray(red, int)).max() <= 3


def test_metrics_on_hand_made_masks():
    truth = np.zeros((10, 10), np.float32)
    truth[:, :5] = 1.0  # left half
    assert cutout_metrics.iou(truth, truth) == 1.0
    assert cutout_metrics.mae(truth, truth) == 0.0
    assert cutout_metrics.max_fbeta(truth, truth) == pytest.approx(1.0)

    empty = np.zeros_like(truth)
    assert cutout_metrics.iou(empty, truth) == 0.0
    assert cutout_metrics.mae(empty, truth) == pytest.approx(0.5)
    assert cutout_metrics.max_fbeta(empty, truth) == 0.0

    top = np.zeros_like(truth)
    top[:5, :] = 1.0  # overlaps the truth in a quarter of the picture
    assert cutout_metrics.iou(top, truth) == pytest.approx(25 / 75)
    assert cutout_metrics.mae(top, truth) == pytest.approx(0.5)
    # precision 0.5, recall 0.5 -> F = 0.5 whatever beta
    assert cutout_metrics.max_fbeta(top, truth) == pytest.approx(0.5)

    hazy = truth * 0.8 + 0.2  # the right half at 0.2: a haze the served alpha removes
    measures = cutout_metrics.scores(hazy, truth)
    assert measures["mae_raw"] == pytest.approx(0.1) and measures["mae"] == pytest.approx(0.0)
    assert measures["iou"] == 1.0 and measures["max_fbeta"] == pytest.approx(1.0)


def test_evaluation_reports_each_group_and_sheets_the_worst_pictures(tmp_path):
    from app.build.torch_cutout import cutter_from_net
    from app.training.cutout_eval import evaluate
    torch.manual_seed(0)
    cutter = cutter_from_net(U2NETP(), {"input_size": 64})
    images, masks = _pictures(4, 64, seed=3)
    groups = [("sprite a", "background x"), ("sprite a", "sprite b", "background y"),
              ("sprite b", "background x"), ("background y",)]
    report = evaluate(cutter, list(zip(images, masks, groups)), tmp_path, sample=2)
    ious = [cutout_metrics.iou(cutter.probability(im), m / 255.0) for im, m in zip(images, masks)]
    assert report["count"] == 4 and report["iou"] == pytest.approx(np.mean(ious))
    assert report["groups"]["sprite a"]["count"] == 2
    assert report["groups"]["sprite a"]["iou"] == pytest.approx(np.mean(ious[:2]), abs=1e-4)
    assert report["groups"]["background y"]["iou"] == pytest.approx(np.mean(ious[1::2]), abs=1e-4)
    assert read_image(tmp_path / "sheet.png").size == read_image(tmp_path / "worst.png").size
    assert "groups" not in evaluate(cutter, list(zip(images, masks)))  # plain pairs: no groups


def test_train_command_exports_a_model_directory_that_serves(pair_folder, tmp_path):
    from app import create_app
    from app.inference.cutout import Cutter
    runner = create_app({"TESTING": True}).test_cli_runner()
    out, run = tmp_path / "my-cutout", tmp_path / "run"
    args = ["train", "cutout", str(pair_folder), "--size", "64", "--batch", "2", "--steps", "2",
            "--eval-every", "2", "--eval-count", "2", "--threads", "1", "--run-dir", str(run),
            "--out", str(out), "--heldout", str(pair_folder)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "cutout" and card["input_size"] == 64 and card["training"]["steps"] == 2
    assert set(card["metrics"]) >= {"iou", "mae", "mae_raw", "max_fbeta", "count"}
    assert (run / "heldout" / "sheet.png").exists()
    image = read_image(pair_folder / "images" / "p0.png")
    assert Cutter.load(out).cutout(image).size == image.size

    bad = runner.invoke(args=["train", "cutout", str(tmp_path / "nowhere")])
    assert bad.exit_code != 0 and "expected a folder with images/ and masks/" in bad.output
