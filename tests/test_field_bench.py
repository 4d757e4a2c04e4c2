"""The field bench: its compositor writes exact masks, refuses training art, and rebuilds the same
pictures; faces as prompts keep the characters and drop what belongs to no one."""
import numpy as np
import pytest

from app.demo_data.figures import Figure
from app.field_bench import build, compose, sources
from app.inference import prompts


def figure(colour, key="fig", size=(240, 120)):
    """A drawn figure of one colour: an opaque body, soft (half-transparent) edges, a face box."""
    h, w = size
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = colour
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - w / 2) / (w / 2.2)) ** 2 + ((yy - h / 2) / (h / 2.1)) ** 2
    rgba[..., 3] = np.clip((1.0 - inside) * 8 * 255, 0, 255).astype(np.uint8)
    return Figure(key, key, "", "", rgba, (w // 3, h // 8, w // 3, w // 3))


def photos():
    rng = np.random.default_rng(3)
    return {"test:noise": rng.integers(0, 256, (300, 400, 3), np.uint8)}


@pytest.mark.parametrize("index", range(6))
def test_the_compositor_writes_the_exact_mask(index):
    # The same picture twice, the figures drawn in two colours: where the pictures differ, and by
    # how much, is exactly what the mask says (props in front, shadows and blur included).
    pictures = []
    for colour in ((255, 0, 0), (0, 0, 255)):
        figures = [figure(colour, "a"), figure(colour, "b", (200, 160))]
        rng = build.picture_rng("val", "unit", index)
        framing, size = compose.pick_framing(rng)
        size = (size[0] // 4, size[1] // 4)  # small: the test stays fast
        background, _ = compose.background_for(rng, photos(), size)
        pictures.append(compose.compose(rng, figures, background, framing, size, finish=False))
    a, b = pictures
    assert np.array_equal(a.mask, b.mask) and a.mask.any()
    seen = (a.image.astype(np.float32)[..., 0] - b.image.astype(np.float32)[..., 0]) / 255.0
    assert np.abs(seen - a.mask / 255.0).max() <= 2 / 255  # uint8 rounding of both pictures
    # The instance map marks only where a figure covers at least half the pixel.
    assert (a.mask[a.instances > 0] >= 127).all()


def test_a_picture_is_rebuilt_identically_and_round_trips_through_its_files(tmp_path):
    figures = [figure((200, 90, 40), "a"), figure((40, 90, 200), "b")]
    first = build.make_picture("val", "unit", 4, figures, photos())
    again = build.make_picture("val", "unit", 4, figures, photos())
    assert np.array_equal(first.image, again.image) and np.array_equal(first.mask, again.mask)
    build.write_picture(first, tmp_path / "val" / "unit", 4)
    (item,) = build.load(tmp_path, "val", sets=("unit",))
    assert np.array_equal(item["mask"], first.mask) and np.array_equal(item["instances"], first.instances)
    assert item["faces"] == [(k, tuple(box)) for k, box in first.faces]
    assert not list((tmp_path / "val" / "unit").glob("*.tmp*"))  # nothing half-written left


@pytest.mark.parametrize("provenance", [
    "live2d:haru", "live2d:haruto", "cast:eileen happy", "cast:sylvie blue giggle",
    "debian:openclipart-png/manga_girl_dirk_struve_01", "debian:gnome-backgrounds/adwaita",
    "debian:wesnoth-1.16-data/landscape", "debian:tuxpaint-stamps-default/apple",
    "debian:renpy-demo/bg uni", "cast-background:uni", "portraits:anyone", "distractors:mug",
])
def test_the_bench_refuses_every_training_source(provenance):
    with pytest.raises(ValueError, match="may not use"):
        sources.refuse_training(provenance)


def test_the_bench_own_sources_pass_and_share_nothing_with_training():
    from app.demo_data import clipart, renpy_cast
    from app.demo_data.live2d import cast

    for name in (*sources.DRAWINGS["val"], *sources.DRAWINGS["test"]):
        assert sources.refuse_training(f"debian:{sources.DRAWING_PACKAGE}/{name}")
        assert name not in clipart.CHOSEN
    for character in (*sources.LIVE2D["val"], *sources.LIVE2D["test"]):
        assert sources.refuse_training(f"live2d:{character}")
        assert (character, "default") in cast.BENCH_FIGURES and character not in cast.CHARACTERS
    assert set(sources.CAST["val"] + sources.CAST["test"]) == set(renpy_cast.SPLITS["test"]["sprites"])
    assert not set(sources.BACKGROUND_PACKAGES) & sources.TRAINING_PACKAGES
    # val and test share no figure.
    for table in (sources.DRAWINGS, sources.LIVE2D, sources.CAST):
        assert not set(table["val"]) & set(table["test"])


# ---------- faces as prompts ----------
def blobs():
    """A map with two characters (tall blobs with a face each) and a salient prop with no face."""
    prob = np.zeros((200, 300), np.float32)
    prob[40:190, 20:80] = 0.95  # character 1; face box (30, 45, 40, 40)
    prob[30:190, 120:180] = 0.9  # character 2; face box (130, 35, 40, 40)
    prob[20:60, 240:290] = 0.97  # a drawn jellyfish: salient, nobody's face
    prob[100:104, 250:254] = 0.3  # faint haze around it
    return prob, [(30, 45, 40, 40), (130, 35, 40, 40)]


def test_faces_as_prompts_drop_a_salient_blob_with_no_face_and_keep_both_characters():
    prob, faces = blobs()
    kept = prompts.keep_figures(prob, faces)
    assert kept[20:60, 240:290].max() == 0 and kept[100:104, 250:254].max() == 0
    assert np.array_equal(kept[40:190, 20:80], prob[40:190, 20:80])
    assert np.array_equal(kept[30:190, 120:180], prob[30:190, 120:180])
    # No face, or faces on nothing found: the map is left as it is.
    assert prompts.keep_figures(prob, []) is prob
    assert np.array_equal(prompts.keep_figures(prob, [(0, 0, 10, 10)]), prob)


def test_one_character_is_split_from_a_figure_that_touches_it():
    prob, faces = blobs()
    prob[120:140, 80:120] = 0.9  # the two characters hold hands: one region
    rgb = np.full(prob.shape + (3,), 255, np.uint8)
    rgb[:, :100] = (250, 200, 200)  # drawn in two colours, as two characters are
    rgb[:, 100:] = (200, 200, 250)
    first = prompts.one_figure(prob, rgb, faces[0], faces)
    assert first[40:190, 20:80].min() > 0.9  # the whole first character
    assert first[30:190, 130:180].max() == 0  # none of the second
    assert first[20:60, 240:290].max() == 0  # nor the prop
    alone = prompts.one_figure(prob, rgb, faces[1], [faces[1]])  # not told of the other face
    assert alone[40:190, 20:80].min() > 0.9 and alone[30:190, 120:180].min() > 0.8
