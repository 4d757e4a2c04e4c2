"""The demo-data engine: sources out of real Debian packages, composing, the training stream."""
import subprocess

import numpy as np
import pytest
from conftest import read_image
from PIL import Image

from app.demo_data import compose, renpy_cast
from app.demo_data.stream import CompositeStream, MixConfig, demo_stream
from app.training.cutout_data import Batcher

needs_cast = pytest.mark.skipif(not renpy_cast.is_fetched(),
                                reason="demo cast not fetched (scripts/setup.sh does it)")


def test_training_backgrounds_are_varied_pictures_of_the_asked_size():
    rng = np.random.default_rng(0)
    photos = [np.asarray(Image.new("RGB", (300, 200), c)) for c in ((10, 120, 200), (220, 200, 30))]
    backgrounds = [compose.training_background(rng, photos, (96, 72)) for _ in range(40)]
    assert all(b.shape == (72, 96, 3) and b.dtype == np.uint8 for b in backgrounds)
    distinct_colours = [len(np.unique(b.reshape(-1, 3), axis=0)) for b in backgrounds]
    assert min(distinct_colours) == 1 and max(distinct_colours) > 100  # flat ones and busy ones


def test_warped_sprites_keep_their_height_and_stay_whole_with_new_outlines():
    sprite = np.zeros((40, 20, 4), np.uint8)
    sprite[...] = (200, 50, 50, 255)  # an opaque block: every row is 20 px wide
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(20):
        alpha = compose.warp_figure(rng, sprite)[..., 3] > 127
        assert alpha.shape[0] == 40 and alpha.any(axis=1).all()
        for row in alpha:  # each row one solid run: bent, never torn
            cols = np.flatnonzero(row)
            assert cols[-1] - cols[0] + 1 == len(cols)
        ratios.append(alpha[-1].sum() / alpha[0].sum())
    assert max(ratios) > 1.4 and min(ratios) < 1.0  # flared skirts and narrowed ones


@needs_cast
def test_extra_art_joins_the_training_sprites_with_exact_masks_and_no_faces():
    plain, extra = demo_stream(MixConfig(), 64), demo_stream(MixConfig(extra_art=True), 64)
    added = [s for s in extra.figures if s.key not in {p.key for p in plain.figures}]
    assert sorted(s.key for s in added) == sorted(renpy_cast.EXTRA_ART)
    rng = np.random.default_rng(0)
    for sprite in added:
        opaque = (sprite.rgba[..., 3] > 127).mean()
        assert 0.1 < opaque < 0.9  # a real cut-out figure, not a filled rectangle
        background = np.zeros((150, 200, 3), np.uint8)
        comp = compose.compose(rng, [sprite], background, (200, 150))
        assert comp.faces == [] and (comp.mask > 127).sum() > 1000
        # Black background: every pixel outside the mask stays black.
        assert comp.image[comp.mask == 0].max() == 0
    x, y = Batcher(extra.pair, 64).batch(4)
    assert x.shape == (4, 3, 64, 64) and y.shape == (4, 1, 64, 64)


def test_the_mask_is_what_the_picture_shows_where_figures_overlap_and_spill_past_the_edge():
    """Two wide, half-transparent figures (wider than their slots: the left one starts left of the
    picture, the two overlap): composed over black and over white with the same draws, the pictures'
    difference is the coverage, and the mask must be it (the second figure over the first)."""
    from app.demo_data.figures import Figure
    yy, xx = np.mgrid[0:30, 0:90]
    figures = []
    for colour in ((220, 40, 40), (40, 40, 220)):
        rgba = np.zeros((30, 90, 4), np.uint8)
        rgba[..., :3] = colour
        rgba[..., 3] = np.clip(60 + 2 * xx + yy, 0, 255)  # soft all over, opaque on the right
        figures.append(Figure(str(colour), "block", "block", "block", rgba, None))
    spilled = 0
    for seed in range(20):
        pictures = [compose.compose(np.random.default_rng(seed), figures, np.full((60, 80, 3), v, np.uint8),
                                    (80, 60)) for v in (0, 255)]
        covered = 255 - (pictures[1].image.astype(int) - pictures[0].image.astype(int)).mean(axis=2)
        assert np.array_equal(pictures[0].mask, pictures[1].mask)
        assert np.abs(covered - pictures[0].mask).max() <= 2
        spilled += int(pictures[0].mask[:, 0].any())
    assert spilled > 5  # the case in question did happen


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
    from app.demo_data import portraits

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


@needs_cast
def test_a_portrait_share_puts_portrait_figures_into_training_pictures(tmp_path):
    from app.demo_data import portraits
    _figure_png(tmp_path / "a.png", (255, 0, 255), 45)  # first by name: the dev split's
    _figure_png(tmp_path / "b.png", (255, 0, 255), 45)
    _figure_png(tmp_path / "c-blank.png", (255, 0, 255), 2)  # near-empty: skipped
    figures = portraits.load(tmp_path, min_count=3)
    assert [f.key for f in figures] == ["b"] and figures[0].face_box is None
    stream = demo_stream(MixConfig(), 64, seed=1)
    stream.others = [(1.0, figures)]
    for _ in range(5):
        comp = stream.composite()
        inside = comp.image[comp.mask == 255].astype(int)
        assert comp.faces == [] and len(inside) > 100
        assert np.abs(inside - (255, 0, 255)).max() <= 2  # every figure is the magenta portrait


@needs_cast
def test_dev_portraits_are_never_trained_on_and_make_their_own_pictures(tmp_path):
    from app.demo_data import portraits
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
        assert set(comp.figures) <= {"p00", "p06"} and comp.background in ("whitehouse", "synthetic")
        assert np.abs(inside - (255, 0, 255)).max() <= 2  # only dev (magenta) figures


def test_backdrops_keep_whole_scenes_from_a_real_package_resized(tmp_path):
    from app.demo_data import backdrops
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
    assert kept.name == "mate-backgrounds-Meadow.jpg" and read_image(kept).size == (1024, 512)
    with pytest.raises(FileNotFoundError, match="demo fetch --backdrops"):
        backdrops.load(out)  # far fewer than the packages hold


@needs_cast
def test_backdrops_join_the_training_photos_only(tmp_path):
    from app.demo_data import backdrops
    for i in range(backdrops.MIN_COUNT):
        _scene((640, 480))(tmp_path / f"b{i:02d}.jpg")
    cast = demo_stream(MixConfig(), 64)
    stream = CompositeStream(64, cast.figures, cast.photos, backdrops=backdrops.load(tmp_path), seed=4)
    assert len(stream.backdrops) == backdrops.MIN_COUNT
    magenta = [(b[..., 1] < 30).all() for b in
               (compose.training_background(stream.rng, stream.photos, (64, 48), stream.backdrops)
                for _ in range(400))]
    # Half of the photo crops, and some mosaic pieces: the cast's photos keep their place.
    assert 0.1 < np.mean(magenta) < 0.4
    val = list(renpy_cast.composites("val", 3, size=(96, 72)))  # validation keeps its own photo
    assert {c.background for c in val} <= {"whitehouse", "synthetic"}


def test_clipart_figures_are_the_chosen_ones_cropped_to_their_alpha(tmp_path):
    from app.demo_data import clipart
    people = tmp_path / "people"
    people.mkdir()
    first, second = clipart.CHOSEN[:2]
    _figure_png(people / f"{first}.png", (255, 0, 255), 30)
    (people / f"{second}.png").symlink_to(people / f"{first}.png")  # the package links duplicates
    _figure_png(people / "photo_of_a_hand.png", (0, 0, 0), 30)  # not chosen
    out = tmp_path / "clipart"
    assert clipart.extract(people, out) == 2
    assert sorted(p.stem for p in out.iterdir()) == sorted([first, second])
    assert read_image(out / f"{first}.png").size == (59, 59)  # the disc, without the margins
    with pytest.raises(FileNotFoundError, match="demo fetch --clipart"):
        clipart.load(out)
    figures = clipart.load(out, min_count=2)
    assert all(f.face_box is None for f in figures)


@needs_cast
def test_a_clipart_share_puts_clipart_figures_into_training_pictures(tmp_path):
    from app.demo_data import clipart
    _figure_png(tmp_path / f"{clipart.CHOSEN[0]}.png", (0, 255, 255), 45)
    stream = demo_stream(MixConfig(), 64, seed=2)
    stream.others = [(1.0, clipart.load(tmp_path, min_count=1))]
    for _ in range(5):
        comp = stream.composite()
        inside = comp.image[comp.mask == 255].astype(int)
        assert len(inside) > 100 and np.abs(inside - (0, 255, 255)).max() <= 2


def test_distractors_are_the_chosen_stamps_cropped_to_their_alpha(tmp_path):
    from app.demo_data import distractors
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
    assert read_image(out / "food-fruit-apple.png").size == (59, 59)  # the disc, without the margins
    with pytest.raises(FileNotFoundError, match="demo fetch --distractors"):
        distractors.load(out)  # far fewer than the package holds


@needs_cast
def test_distractors_lie_behind_the_figures_as_background(tmp_path):
    square = np.zeros((40, 40, 4), np.uint8)
    square[...] = (255, 0, 255, 255)
    stream = demo_stream(MixConfig(), 64, seed=5)

    def magenta(comp):
        return (comp.image == (255, 0, 255)).all(axis=2)
    assert not any(magenta(stream.composite()).sum() > 50 for _ in range(5))
    stream.objects, stream.object_share = [square], 1.0
    for _ in range(8):
        comp = stream.composite()
        pasted = magenta(comp)
        assert pasted.sum() > 50  # one to three objects in every picture
        assert comp.mask[pasted].max() <= 8  # never foreground (faint at most under a figure's edge)
        assert (comp.mask == 255).sum() > 100  # the figures are still there, on top
    rng = np.random.default_rng(0)
    pictures = [compose.paste_objects(rng, np.zeros((100, 200, 3), np.uint8), [square], 1) for _ in range(50)]
    sizes = [np.sqrt((p[..., 0] == 255).sum()) for p in pictures]
    assert 10 < np.median(sizes) < 60  # 15-60% of the height, partly outside at times




def test_live2d_faces_split_by_pose_for_the_classifier(tmp_path):
    """Every Live2D character is known to the classifier; its poses ending in 8 and 9 are kept for
    validation and test (the rule written in app/training/demo_faces.py)."""
    import json

    from app.training import demo_faces
    rgba = np.zeros((60, 40, 4), np.uint8)
    rgba[10:50, 5:35] = (200, 100, 50, 255)
    for character, outfit in (("haruto", "default"), ("shizuku", "default")):
        folder = tmp_path / f"{character}-{outfit}"
        folder.mkdir()
        for pose_id in (3, 8, 9, 18):
            Image.fromarray(rgba).save(folder / f"{pose_id:04d}.png")
            meta = {"character": character, "outfit": outfit, "expression": "smile", "pose_id": pose_id,
                    "face_box": [10, 12, 20, 20], "alpha_box": [5, 10, 35, 50]}
            (folder / f"{pose_id:04d}.json").write_text(json.dumps(meta))
    poses = {split: sorted((f.character, f.meta["pose_id"]) for f in demo_faces.live2d_figures(split, tmp_path))
             for split in ("train", "val", "test")}
    assert poses == {"train": [("haruto", 3), ("shizuku", 3)],
                     "val": [("haruto", 8), ("haruto", 18), ("shizuku", 8), ("shizuku", 18)],
                     "test": [("haruto", 9), ("shizuku", 9)]}
    figure = demo_faces.live2d_figures("train", tmp_path)[0]
    assert figure.rgba.shape == (40, 30, 4) and figure.face_box == (5, 2, 20, 20)  # cropped to its alpha


def test_non_face_crops_lie_away_from_every_face():
    """The _unknown crops of no face (app/training/demo_faces.py) never cover a face, and a picture
    filled with faces gives none rather than one on a face."""
    from app.demo_data.figures import Composite
    from app.training import demo_faces
    rng = np.random.default_rng(0)
    image = np.zeros((200, 300, 3), np.uint8)
    faces = [("a", (20, 30, 40, 40)), ("b", (200, 100, 50, 50))]
    comp = Composite(image, np.zeros((200, 300), np.uint8), faces)
    for _ in range(200):
        x, y, w, h = demo_faces.non_face_box(rng, comp)
        assert 0 <= x and x + w <= 300 and 0 <= y and y + h <= 200 and w == h
        assert all(demo_faces._overlap((x, y, w, h), box) <= 0.15 for _, box in faces)
    crowded = Composite(image, image[..., 0], [("c", (0, 0, 300, 200))])
    assert demo_faces.non_face_box(rng, crowded) is None
