"""Live2D renders in a real headless Debian Chromium: exact alpha, face boxes, seeds, resuming, splits.

Everything is rendered here, offline, from the npm packages setup installed (a few seconds).
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from app.demo_data import live2d
from app.demo_data.live2d import cast, poses
from app.demo_data.live2d.browser import CHROMEDRIVER, CHROMIUM, Browser
from app.demo_data.live2d.command import render_command
from app.demo_data.live2d.renderer import calibrate, find_face, model_url, over_white, render_pose
from app.demo_data.live2d.server import PageServer
from app.inference.faces import CASCADE_PATH

CHARACTERS = ["shizuku", "hibiki"]  # one framed by its head hit area, one by a calibrated mesh
COUNT = 3
SEED = 3  # gives each of them one pose framed whole (zoom 0)

pytestmark = [
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason="Debian chromium and chromium-driver are not installed (scripts/setup.sh --dev)"),
    pytest.mark.skipif(not CASCADE_PATH.exists(), reason="the face cascade is missing: run scripts/setup.sh"),
]
needs_models = pytest.mark.skipif(
    not all((cast.NODE_MODULES / package).is_dir() for package, _ in cast.FIGURES.values()),
    reason=f"Live2D packages not installed: run {cast.SETUP_COMMAND}")


def renders(out_dir):
    """[(rgba, metadata)] of every render under out_dir, in a fixed order."""
    found = []
    for meta in sorted(Path(out_dir).glob("*/[0-9]*.json")):
        found.append((np.array(Image.open(meta.with_suffix(".png"))), json.loads(meta.read_text())))
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("live2d") / "renders"
    reports = []
    summary = live2d.render(out, characters=CHARACTERS, count_per_character=COUNT, seed=SEED,
                            progress=lambda *args: reports.append(args))
    return out, summary, reports


@needs_models
def test_render_writes_every_pose_with_metadata_and_progress(rendered):
    out, summary, reports = rendered
    assert summary["rendered"] == 2 * COUNT and summary["skipped"] == 0
    assert [r[:2] for r in reports] == [(i + 1, 2 * COUNT) for i in range(2 * COUNT)]
    found = renders(out)
    assert len(found) == 2 * COUNT
    for rgba, meta in found:
        assert rgba.shape == (512, 512, 4) and rgba.dtype == np.uint8
        assert meta["character"] in CHARACTERS and meta["seed"] == SEED
        for key in ("outfit", "expression", "motion", "angles", "framing", "scale", "face_box", "pose_id"):
            assert key in meta
    assert not list(out.rglob("*.tmp")), "no temporary files left behind"
    # Poses vary: not every render has the same expression, motion or framing.
    assert len({json.dumps([m["expression"], m["motion"], m["framing"]["zoom"]]) for _, m in found}) == len(found)


@needs_models
def test_alpha_is_the_figure_and_nothing_else(rendered):
    out, _, _ = rendered
    whole = 0
    for rgba, meta in renders(out):
        alpha = rgba[..., 3]
        # No background left: where nothing was drawn the pixel is fully transparent black.
        assert (rgba[alpha == 0][:, :3] == 0).all()
        x0, y0, x1, y1 = meta["alpha_box"]
        assert 0 < (x1 - x0) * (y1 - y0) < alpha.size * 0.95, "a figure, not an empty or full frame"
        assert (alpha == 255).mean() > 0.05 and len(np.unique(alpha)) > 64, "solid inside, soft edges"
        if meta["framing"]["zoom"] == 0:
            whole += 1
            assert meta["clipped"] == [], "a figure framed whole touches no edge of the frame"
            assert 0 < x0 and 0 < y0 and x1 < 512 and y1 < 512
        else:
            assert meta["clipped"] in ([], ["bottom"], ["bottom", "left"], ["bottom", "right"],
                                       ["bottom", "left", "right"]), "a bust is cut below, never above"
    assert whole >= 2, "the seed gives poses framed whole"


@pytest.fixture(scope="module")
def page():
    """The render page in Chromium, at a frame that is not square."""
    with PageServer() as base_url, Browser(base_url, (384, 512)) as browser:
        yield base_url, browser


def posed(browser, key, pose_id=0, **changes):
    """(rgba, metadata) of a seeded pose of `key`, with `changes` to the pose."""
    info = browser.load(model_url(key))
    calibration = calibrate(browser, key, info)
    pose = dict(poses.sample(poses.pose_rng(SEED, *key, pose_id), info), **changes)
    return render_pose(browser, key, info, pose, calibration)


@needs_models
def test_alpha_composites_exactly_like_the_browser(page):
    """The render over white equals Chromium's own drawing of the same pose on a white page."""
    base_url, browser = page
    rgba, _ = posed(browser, ("hibiki", "default"))
    on_white = browser.screenshot(background=(255, 255, 255, 1))
    assert rgba.shape == (512, 384, 4)
    assert (on_white[..., 3] == 255).all()
    diff = np.abs(over_white(rgba).astype(int) - on_white[..., :3].astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05
    # Nothing but the loopback server was asked for anything.
    urls = browser.driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert urls and all(url.startswith(base_url + "/") for url in urls)
    assert any("/models/live2d-widget-model-hibiki/" in url for url in urls)


def soft_share(rgba):
    """Share of the figure's pixels that are neither nearly transparent nor nearly opaque."""
    alpha = rgba[..., 3]
    return ((alpha > 20) & (alpha < 235)).sum() / (alpha > 0).sum()


@needs_models
def test_a_motion_that_switches_arms_shows_one_arm_opaque(page):
    """Chitose's wave swaps his arm for a raised one; 0.2 s in, no half-transparent ghost remains."""
    _, browser = page
    key = ("chitose", "default")
    info = browser.load(model_url(key))
    wave = next(i for i, clip in enumerate(info["motions"]) if clip["file"].endswith("handwave.mtn"))
    rgba, meta = posed(browser, key, motion=wave, motion_phase=0.08, zoom=0.0)
    assert meta["motion"]["file"].endswith("handwave.mtn") and 100 < meta["motion"]["time_ms"] < 400
    assert soft_share(rgba) < 0.08  # soft edges only; a ghost arm made it 0.18


def _iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    return 0.0 if w <= 0 or h <= 0 else w * h / (aw * ah + bw * bh - w * h)


@needs_models
def test_face_box_lies_on_the_face(rendered):
    out, _, _ = rendered
    confirmed = 0
    for rgba, meta in renders(out):
        x, y, w, h = meta["face_box"]
        ax0, ay0, ax1, ay1 = meta["alpha_box"]
        assert w > 10 and 0.6 < h / w < 1.6
        # On the figure, in its upper part (a bust's frame is all upper part).
        assert ax0 <= x + w / 2 <= ax1 and ay0 <= y + h / 2 <= ay0 + 0.55 * (ay1 - ay0)
        assert (rgba[max(y, 0):y + h, max(x, 0):x + w, 3] > 0).mean() > 0.8
        # Where the anime-face cascade sees a face, it is this one.
        face, _ = find_face(over_white(rgba), below=512)
        if face is not None:
            found = (face[0], face[1], face[2] - face[0], face[3] - face[1])
            assert _iou(found, (x, y, w, h)) > 0.4, (meta["character"], meta["pose_id"], found, (x, y, w, h))
            confirmed += 1
    assert confirmed >= 3, "the cascade confirms the box on several poses"


@needs_models
def test_same_seed_same_pixels_and_resume_renders_only_what_is_missing(rendered, tmp_path):
    out, _, _ = rendered
    again = tmp_path / "again"
    shutil.copytree(out, again)
    # An interrupted run: pose 1 of hibiki never finished, pose 2 lost its metadata.
    (again / "hibiki-default" / "0001.png").unlink()
    (again / "hibiki-default" / "0001.json").unlink()
    (again / "hibiki-default" / "0002.json").unlink()
    result = CliRunner().invoke(render_command, ["--out-dir", str(again), "--seed", str(SEED), "--count",
                                                 str(COUNT), "--character", "hibiki", "--character", "shizuku"])
    assert result.exit_code == 0, result.output
    assert "2 rendered" in result.output and f"{2 * COUNT - 2} already there" in result.output
    first, second = renders(out), renders(again)
    assert len(first) == len(second) == 2 * COUNT
    for (rgba_a, meta_a), (rgba_b, meta_b) in zip(first, second):
        assert np.array_equal(rgba_a, rgba_b), (meta_a["character"], meta_a["pose_id"])
        assert meta_a == meta_b


def test_other_seeds_give_other_poses():
    info = {"expressions": ["f01", "f02"], "motions": [{"duration_ms": 1000}] * 3}
    a = poses.sample(poses.pose_rng(0, "haru", "01", 5), info)
    assert a == poses.sample(poses.pose_rng(0, "haru", "01", 5), info)
    assert a != poses.sample(poses.pose_rng(1, "haru", "01", 5), info)
    assert a != poses.sample(poses.pose_rng(0, "haru", "02", 5), info)


def test_missing_model_package_names_the_setup_command(tmp_path):
    modules = tmp_path / "node_modules"
    modules.mkdir()
    if (cast.NODE_MODULES / cast.RUNTIME_PACKAGE).is_dir():
        (modules / cast.RUNTIME_PACKAGE).symlink_to(cast.NODE_MODULES / cast.RUNTIME_PACKAGE)
    with pytest.raises(live2d.ModelsMissing) as caught:
        live2d.render(tmp_path / "out", characters=["koharu"], count_per_character=1, node_modules=modules)
    message = str(caught.value)
    assert "live2d-widget-model-koharu" in message and "scripts/setup.sh --dev" in message
    assert not (tmp_path / "out").exists()


def test_cli_refuses_unknown_characters(tmp_path):
    result = CliRunner().invoke(render_command, ["--out-dir", str(tmp_path), "--character", "miku"])
    assert result.exit_code != 0 and "miku" in result.output
    with pytest.raises(ValueError, match="miku"):
        live2d.render(tmp_path, characters=["miku"], count_per_character=1)


def test_splits_hold_out_haruto_and_every_tenth_pose():
    seen = {}
    for character in live2d.CHARACTERS:
        for pose_id in range(100):
            seen.setdefault(live2d.split_of(character, pose_id), set()).add((character, pose_id))
    assert {c for c, _ in seen["test_character"]} == {"haruto"} == set(live2d.HELD_OUT_CHARACTERS)
    for split in ("train", "val", "test_pose"):
        assert "haruto" not in {c for c, _ in seen[split]}
    assert len(seen["train"]) == 5 * 80 and len(seen["val"]) == len(seen["test_pose"]) == 5 * 10
    assert sum(map(len, seen.values())) == 6 * 100  # each render in exactly one split


@needs_models
def test_load_gives_cropped_figures_with_face_boxes(rendered):
    out, _, _ = rendered
    train = live2d.load(out, "train")  # pose ids 0-2 are all training poses
    assert len(train) == 2 * COUNT
    assert live2d.load(out, "val") == [] and live2d.load(out, "test_character") == []
    assert len(live2d.load(out, "all")) == 2 * COUNT
    for figure in train:
        h, w = figure.rgba.shape[:2]
        x, y, fw, fh = figure.face_box
        assert figure.rgba.shape[2] == 4 and figure.key.startswith(figure.character)
        assert figure.rgba[..., 3][0].any() and figure.rgba[..., 3][:, 0].any(), "cropped to the alpha"
        assert -1 <= x and x + fw <= w + 1 and -1 <= y and y + fh <= h + 1
    with pytest.raises(ValueError):
        live2d.load(out, "everything")


def test_load_names_the_render_command_when_nothing_is_rendered(tmp_path):
    with pytest.raises(FileNotFoundError, match="flask --app wsgi demo render"):
        live2d.load(tmp_path, "train")


def test_page_server_serves_only_the_page_runtime_and_models():
    import urllib.error
    import urllib.request
    with PageServer() as base_url:
        def status(path):
            try:
                return urllib.request.urlopen(base_url + path, timeout=10).status
            except urllib.error.HTTPError as exc:
                return exc.code
        assert status("/") == 200 and status("/render.js") == 200
        if (cast.NODE_MODULES / cast.RUNTIME_PACKAGE).is_dir():
            assert status("/live2d.js") == 200
        assert status("/models/opencollective/package.json") == 404
        assert status("/models/live2d-widget-model-shizuku/../../package.json") == 404
        assert status("/models/../package-lock.json") == 404
