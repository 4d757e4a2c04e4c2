"""Cutout training tools: the loss goes down, checkpoints resume, metrics give known values."""
import json
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from app.nets.u2net import U2NETP
from app.training import cutout_metrics, demo_cast
from app.training.cutout_data import to_tensors
from app.training.cutout_train import CutoutTrainConfig, bce_loss, train


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
    run = tmp_path / "run"
    first = train(cfg, run, log=lambda m: None, stop_after=2)
    assert first["step"] == 2 and (run / "last.pt").exists() and (run / "best.pt").exists()
    messages = []
    second = train(cfg, run, log=messages.append)
    assert "resumed from" in messages[0] and "at step 2" in messages[0]
    assert second["step"] == 4
    lines = (run / "log.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one evaluation at step 2, one at step 4: nothing repeated
    assert not list(run.glob("*.tmp"))


def test_training_from_official_style_weights_loads_them(tmp_path, pair_folder):
    torch.manual_seed(1)
    init = tmp_path / "u2netp.pth"
    torch.save(U2NETP().state_dict(), init)
    cfg = CutoutTrainConfig(data=str(pair_folder), init=str(init), size=64, batch=2, steps=1,
                            eval_every=1, eval_count=1, threads=1)
    ckpt = train(cfg, tmp_path / "run", log=lambda m: None)
    assert ckpt["step"] == 1


def test_fine_tune_starts_from_a_runs_best_checkpoint_and_the_card_says_so(tmp_path, pair_folder):
    from app.training.cutout_cli import export_model_dir
    from app.training.cutout_train import build_net
    first = CutoutTrainConfig(data=str(pair_folder), size=64, batch=2, steps=2, eval_every=2,
                              eval_count=1, threads=1)
    train(first, tmp_path / "low", log=lambda m: None)
    best = torch.load(tmp_path / "low" / "best.pt", weights_only=True)
    fine = CutoutTrainConfig(data=str(pair_folder), init=str(tmp_path / "low" / "best.pt"), size=96,
                             batch=2, steps=1, eval_every=1, eval_count=1, threads=1)
    start = build_net(fine).state_dict()
    assert all(torch.equal(start[k], best["model"][k]) for k in start)
    train(fine, tmp_path / "high", log=lambda m: None)
    card = export_model_dir(tmp_path / "high" / "best.pt", tmp_path / "model", "model")
    assert card["input_size"] == 96
    assert card["training"]["initialised_from"]["steps"] == 2
    assert card["training"]["initialised_from"]["config"]["size"] == 64


def test_hue_shift_turns_red_into_green_and_a_full_turn_changes_nothing():
    from app.training.cutout_data import shift_hue
    red = Image.new("RGB", (4, 4), (200, 30, 30))
    r, g, b = shift_hue(red, 1 / 3).getpixel((0, 0))
    assert g > 150 and r < 60 and b < 60
    assert np.abs(np.asarray(shift_hue(red, 1.0), int) - np.asarray(red, int)).max() <= 3


def test_training_backgrounds_are_varied_pictures_of_the_asked_size():
    from app.training.cutout_data import training_background
    rng = np.random.default_rng(0)
    photos = [np.asarray(Image.new("RGB", (300, 200), c)) for c in ((10, 120, 200), (220, 200, 30))]
    backgrounds = [training_background(rng, photos, (96, 72)) for _ in range(40)]
    assert all(b.shape == (72, 96, 3) and b.dtype == np.uint8 for b in backgrounds)
    distinct_colours = [len(np.unique(b.reshape(-1, 3), axis=0)) for b in backgrounds]
    assert min(distinct_colours) == 1 and max(distinct_colours) > 100  # flat ones and busy ones


def test_warped_sprites_keep_their_height_and_stay_whole_with_new_outlines():
    from app.training.cutout_data import warp_sprite
    sprite = np.zeros((40, 20, 4), np.uint8)
    sprite[...] = (200, 50, 50, 255)  # an opaque block: every row is 20 px wide
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(20):
        alpha = warp_sprite(rng, sprite)[..., 3] > 127
        assert alpha.shape[0] == 40 and alpha.any(axis=1).all()
        for row in alpha:  # each row one solid run: bent, never torn
            cols = np.flatnonzero(row)
            assert cols[-1] - cols[0] + 1 == len(cols)
        ratios.append(alpha[-1].sum() / alpha[0].sum())
    assert max(ratios) > 1.4 and min(ratios) < 1.0  # flared skirts and narrowed ones


@pytest.mark.skipif(not demo_cast.is_fetched(),
                    reason="demo cast not fetched (scripts/setup.sh does it)")
def test_extra_art_joins_the_training_sprites_with_exact_masks_and_no_faces():
    from app.training.cutout_data import DemoCastStream
    plain, extra = DemoCastStream(64), DemoCastStream(64, extra_art=True)
    added = [s for s in extra.sprites if s.key not in {p.key for p in plain.sprites}]
    assert sorted(s.key for s in added) == sorted(demo_cast.EXTRA_ART)
    rng = np.random.default_rng(0)
    for sprite in added:
        opaque = (sprite.rgba[..., 3] > 127).mean()
        assert 0.1 < opaque < 0.9  # a real cut-out figure, not a filled rectangle
        background = np.zeros((150, 200, 3), np.uint8)
        comp = demo_cast.compose(rng, [sprite], background, (200, 150))
        assert comp.faces == [] and (comp.mask > 127).sum() > 1000
        # Black background: every pixel outside the mask stays black.
        assert comp.image[comp.mask == 0].max() == 0
    x, y = extra.batch(4)
    assert x.shape == (4, 3, 64, 64) and y.shape == (4, 1, 64, 64)


def _figure_png(path, colour, radius):
    rgba = np.zeros((120, 100, 4), np.uint8)
    yy, xx = np.mgrid[0:120, 0:100]
    rgba[(yy - 60) ** 2 + (xx - 50) ** 2 < radius ** 2] = (*colour, 255)
    Image.fromarray(rgba).save(path)


def _fake_deb(tmp_path, name, files):
    """A real Debian package `name` holding `files` ({path in the package: writer(path)})."""
    root = tmp_path / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {name}\nVersion: 1\nArchitecture: all\n"
                                            "Maintainer: t <t@example.org>\nDescription: test\n")
    for path, write in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        write(root / path)
    deb = tmp_path / f"{name}_1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True,
                   stdout=subprocess.DEVNULL)
    return deb


def _scene(size, colour=(255, 0, 255), alpha=None):
    def write(path):
        img = Image.new("RGB", size, colour)
        if alpha is not None:
            img.putalpha(alpha)
        img.save(path)
    return write


def test_portraits_come_out_of_a_real_package_and_only_they_do(tmp_path):
    from app.training import portraits

    def figure(path):
        _figure_png(path, (200, 30, 30), 40)
    deb = _fake_deb(tmp_path, "fake-portraits", {
        **{f"{portraits.PORTRAIT_DIR}{sub}/archer.png": figure
           for sub in ("humans", "elves", "monsters")},  # monsters are not people-shaped: left out
        portraits.PORTRAIT_DIR + "ARTISTS": lambda path: path.write_text("credits"),
        "usr/share/games/wesnoth/1.16/data/core/images/units/archer.png": figure,
    })
    out = tmp_path / "portraits"
    assert portraits.extract(deb, out) == 2
    assert sorted(p.name for p in out.iterdir()) == ["elves-archer.png", "humans-archer.png"]
    with pytest.raises(FileNotFoundError, match="demo fetch --portraits"):
        portraits.load(out)  # far fewer than the package holds


@pytest.mark.skipif(not demo_cast.is_fetched(), reason="demo cast not fetched (scripts/setup.sh does it)")
def test_a_portrait_share_puts_portrait_figures_into_training_pictures(tmp_path):
    from app.training import portraits
    from app.training.cutout_data import DemoCastStream
    _figure_png(tmp_path / "a.png", (255, 0, 255), 45)  # first by name: the dev split's
    _figure_png(tmp_path / "b.png", (255, 0, 255), 45)
    _figure_png(tmp_path / "c-blank.png", (255, 0, 255), 2)  # near-empty: skipped
    figures = portraits.load(tmp_path, min_count=3)
    assert [f.key for f in figures] == ["b"] and figures[0].face_box is None
    stream = DemoCastStream(64, seed=1)
    stream.portraits, stream.portrait_share = figures, 1.0
    for _ in range(5):
        comp = stream.composite()
        inside = comp.image[comp.mask == 255].astype(int)
        assert comp.faces == [] and len(inside) > 100
        assert np.abs(inside - (255, 0, 255)).max() <= 2  # every figure is the magenta portrait


@pytest.mark.skipif(not demo_cast.is_fetched(), reason="demo cast not fetched (scripts/setup.sh does it)")
def test_dev_portraits_are_never_trained_on_and_make_their_own_pictures(tmp_path):
    from app.training import portraits
    for i in range(12):  # the dev split takes every DEV_EVERY-th by name: 00 and 06
        _figure_png(tmp_path / f"p{i:02d}.png", (255, 0, 255) if i % 6 == 0 else (0, 255, 0), 40)
    train = portraits.load(tmp_path, "train", min_count=12)
    dev = portraits.load(tmp_path, "dev", min_count=12)
    assert [f.key for f in dev] == ["p00", "p06"] and len(train) == 10
    assert not {f.key for f in train} & {f.key for f in dev}
    pictures = list(portraits.dev_composites(6, size=(160, 120), cache_dir=tmp_path, min_count=12))
    again = list(portraits.dev_composites(6, size=(160, 120), cache_dir=tmp_path, min_count=12))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(pictures, again))  # reproducible
    for comp in pictures:
        inside = comp.image[comp.mask == 255].astype(int)
        assert set(comp.sprites) <= {"p00", "p06"} and comp.background in ("whitehouse", "synthetic")
        assert np.abs(inside - (255, 0, 255)).max() <= 2  # only dev (magenta) figures


def test_backdrops_keep_whole_scenes_from_a_real_package_resized(tmp_path):
    from app.training import backdrops
    folder = backdrops.SOURCES["mate-backgrounds"]
    deb = _fake_deb(tmp_path, "mate-backgrounds", {
        folder + "nature/Meadow.jpg": _scene((1400, 700)),  # kept, shrunk to 1024 wide
        folder + "nature/Meadow_3840x2160.jpg": _scene((1400, 700)),  # the same in another size
        folder + "abstract/Icon.png": _scene((200, 200)),  # too small to be scenery
        folder + "abstract/Overlay.png": _scene((800, 600), alpha=100),  # see-through
        "usr/share/pixmaps/Elsewhere.png": _scene((800, 600)),  # outside the folder
    })
    out = tmp_path / "backdrops"
    out.mkdir()
    assert backdrops.extract(deb, out) == 1
    [kept] = out.iterdir()
    assert kept.name == "mate-backgrounds-Meadow.jpg" and Image.open(kept).size == (1024, 512)
    with pytest.raises(FileNotFoundError, match="demo fetch --backdrops"):
        backdrops.load(out)  # far fewer than the packages hold


@pytest.mark.skipif(not demo_cast.is_fetched(), reason="demo cast not fetched (scripts/setup.sh does it)")
def test_backdrops_join_the_training_photos_only(tmp_path):
    from app.training import backdrops
    from app.training.cutout_data import DemoCastStream, training_background
    for i in range(backdrops.MIN_COUNT):
        _scene((640, 480))(tmp_path / f"b{i:02d}.jpg")
    stream = DemoCastStream(64, seed=4, backdrops=True, backdrop_dir=tmp_path)
    assert len(stream.backdrops) == backdrops.MIN_COUNT
    magenta = [(b[..., 1] < 30).all() for b in
               (training_background(stream.rng, stream.photos, (64, 48), stream.backdrops)
                for _ in range(400))]
    # Half of the photo crops, and some mosaic pieces: the cast's photos keep their place.
    assert 0.1 < np.mean(magenta) < 0.4
    val = list(demo_cast.composites("val", 3, size=(96, 72)))  # validation keeps its own photo
    assert {c.background for c in val} <= {"whitehouse", "synthetic"}


def test_clipart_figures_are_the_chosen_ones_cropped_to_their_alpha(tmp_path):
    from app.training import clipart
    people = tmp_path / "people"
    people.mkdir()
    first, second = clipart.CHOSEN[:2]
    _figure_png(people / f"{first}.png", (255, 0, 255), 30)
    (people / f"{second}.png").symlink_to(people / f"{first}.png")  # the package links duplicates
    _figure_png(people / "photo_of_a_hand.png", (0, 0, 0), 30)  # not chosen
    out = tmp_path / "clipart"
    assert clipart.extract(people, out) == 2
    assert sorted(p.stem for p in out.iterdir()) == sorted([first, second])
    assert Image.open(out / f"{first}.png").size == (59, 59)  # the disc, without the margins
    with pytest.raises(FileNotFoundError, match="demo fetch --clipart"):
        clipart.load(out)
    figures = clipart.load(out, min_count=2)
    assert all(f.face_box is None for f in figures)


@pytest.mark.skipif(not demo_cast.is_fetched(), reason="demo cast not fetched (scripts/setup.sh does it)")
def test_a_clipart_share_puts_clipart_figures_into_training_pictures(tmp_path):
    from app.training import clipart
    from app.training.cutout_data import DemoCastStream
    _figure_png(tmp_path / f"{clipart.CHOSEN[0]}.png", (0, 255, 255), 45)
    stream = DemoCastStream(64, seed=2)
    stream.clipart, stream.clipart_share = clipart.load(tmp_path, min_count=1), 1.0
    for _ in range(5):
        comp = stream.composite()
        inside = comp.image[comp.mask == 255].astype(int)
        assert len(inside) > 100 and np.abs(inside - (0, 255, 255)).max() <= 2


def test_distractors_are_the_chosen_stamps_cropped_to_their_alpha(tmp_path):
    from app.training import distractors
    stamps = distractors.STAMPS_DIR

    def disc(path):
        _figure_png(path, (255, 0, 255), 30)
    deb = _fake_deb(tmp_path, distractors.PACKAGE, {
        stamps + "food/fruit/apple.png": disc,
        stamps + "food/fruit/cartoon/apple.png": disc,  # the same name in another folder: kept apart
        stamps + "animals/cat.png": disc,  # animals could be characters
        stamps + "town/monuments/cartoon/statue.png": disc,  # a figure
        stamps + "food/fruit/apple.txt": lambda path: path.write_text("Apple"),
        "usr/share/doc/tuxpaint/logo.png": disc,
    })
    out = tmp_path / "distractors"
    assert distractors.extract(deb, out) == 2
    assert sorted(p.name for p in out.iterdir()) == ["food-fruit-apple.png", "food-fruit-cartoon-apple.png"]
    assert Image.open(out / "food-fruit-apple.png").size == (59, 59)  # the disc, without the margins
    with pytest.raises(FileNotFoundError, match="demo fetch --distractors"):
        distractors.load(out)  # far fewer than the package holds


@pytest.mark.skipif(not demo_cast.is_fetched(), reason="demo cast not fetched (scripts/setup.sh does it)")
def test_distractors_lie_behind_the_figures_as_background(tmp_path):
    from app.training import distractors
    from app.training.cutout_data import DemoCastStream
    square = np.zeros((40, 40, 4), np.uint8)
    square[...] = (255, 0, 255, 255)
    stream = DemoCastStream(64, seed=5)
    magenta = lambda comp: (comp.image == (255, 0, 255)).all(axis=2)
    assert not any(magenta(stream.composite()).sum() > 50 for _ in range(5))
    stream.objects, stream.distractor_share = [square], 1.0
    for _ in range(8):
        comp = stream.composite()
        pasted = magenta(comp)
        assert pasted.sum() > 50  # one to three objects in every picture
        assert comp.mask[pasted].max() <= 8  # never foreground (faint at most under a figure's edge)
        assert (comp.mask == 255).sum() > 100  # the figures are still there, on top
    rng = np.random.default_rng(0)
    pictures = [distractors.paste(rng, np.zeros((100, 200, 3), np.uint8), [square], 1) for _ in range(50)]
    sizes = [np.sqrt((p[..., 0] == 255).sum()) for p in pictures]
    assert 10 < np.median(sizes) < 60  # 15-60% of the height, partly outside at times


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
    from app.cutout import Cutter
    from app.training.cutout_eval import evaluate
    torch.manual_seed(0)
    cutter = Cutter(U2NETP(), {"input_size": 64})
    images, masks = _pictures(4, 64, seed=3)
    groups = [("sprite a", "background x"), ("sprite a", "sprite b", "background y"),
              ("sprite b", "background x"), ("background y",)]
    report = evaluate(cutter, list(zip(images, masks, groups)), tmp_path, sample=2)
    ious = [cutout_metrics.iou(cutter.probability(im), m / 255.0) for im, m in zip(images, masks)]
    assert report["count"] == 4 and report["iou"] == pytest.approx(np.mean(ious))
    assert report["groups"]["sprite a"]["count"] == 2
    assert report["groups"]["sprite a"]["iou"] == pytest.approx(np.mean(ious[:2]), abs=1e-4)
    assert report["groups"]["background y"]["iou"] == pytest.approx(np.mean(ious[1::2]), abs=1e-4)
    assert Image.open(tmp_path / "sheet.png").size == Image.open(tmp_path / "worst.png").size
    assert "groups" not in evaluate(cutter, list(zip(images, masks)))  # plain pairs: no groups


def test_train_command_exports_a_model_directory_that_serves(pair_folder, tmp_path):
    from app import create_app
    from app.cutout import Cutter
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
    image = Image.open(pair_folder / "images" / "p0.png")
    assert Cutter.load(out).cutout(image).size == image.size

    bad = runner.invoke(args=["train", "cutout", str(tmp_path / "nowhere")])
    assert bad.exit_code != 0 and "expected a folder with images/ and masks/" in bad.output
