"""Hard-case training pictures (app/demo_data/hard_cases.py): exact masks in every framing, props
and shadows as background, painted backgrounds, and the training stream's share of them."""
import numpy as np
from PIL import Image

from app.demo_data import hard_cases
from app.demo_data.figures import Figure
from app.demo_data.stream import CompositeStream

GREEN = (0, 255, 0)


def _figure(key="green", size=(120, 60)):
    rgba = np.zeros((*size, 4), np.uint8)
    rgba[...] = (*GREEN, 255)
    return Figure(key, key, "", "", rgba, (15, 5, 30, 30))


def _is_green(image):
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return (g > 170) & (r < 70) & (b < 70)


def _shrunk(mask, px):
    import cv2
    return cv2.erode(mask, np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


def test_every_framing_keeps_the_mask_exactly_where_the_figures_are():
    """Opaque green figures on black: away from edges (JPEG, rescaling), the mask says figure only
    where a figure is drawn (lit, shaded, rim-lit where one overlaps another, never the black
    background), and no figure pixel lies where it says background, whatever props, shadows,
    grades and finishes were drawn."""
    background = np.zeros((300, 400, 3), np.uint8)
    for seed in range(6):
        for framing in hard_cases.FRAMINGS:
            rng = np.random.default_rng(seed)
            figures = [_figure(f"g{i}") for i in range(3)]
            c = hard_cases.hard_case(rng, figures, background, framing)
            assert c.image.shape == (300, 400, 3) and c.mask.shape == (300, 400)
            assert c.extra["framing"] == framing
            inside = _shrunk((c.mask == 255).astype(np.uint8), 8)
            outside = _shrunk((c.mask == 0).astype(np.uint8), 8)
            green = _is_green(c.image)
            assert inside.any(), (seed, framing)
            assert (c.image[inside].astype(int).sum(axis=1) > 80).all(), (seed, framing)
            assert not green[outside].any(), (seed, framing)
            assert len(c.figures) == (1 if framing != "group" else 3)


def test_framings_place_figures_at_their_scales():
    rng = np.random.default_rng(1)
    fig = _figure()
    heights = {f: [h for _ in range(30) for _, h, _, _ in hard_cases._placements(rng, f, [fig], 400, 300)]
               for f in ("bust", "whole", "small")}
    assert min(heights["bust"]) > 300  # head and shoulders: the figure runs out of the frame
    assert 0.7 * 300 <= min(heights["whole"]) and max(heights["whole"]) <= 0.95 * 300
    assert max(heights["small"]) <= 0.35 * 300


def test_a_prop_in_front_cuts_the_mask_and_one_behind_does_not():
    rng = np.random.default_rng(0)
    fronts = behind = 0
    for _ in range(40):
        c = hard_cases.hard_case(rng, [_figure()], np.zeros((200, 200, 3), np.uint8), "whole")
        figure = np.zeros((200, 200), bool)
        ys, xs = np.nonzero(c.mask > 0)
        figure[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True  # the placed rectangle
        holes = figure & (c.mask < 128)
        fronts += holes.sum() > 20
        behind += ((c.mask == 0) & ~figure & (c.image.sum(axis=2) > 60)).sum() > 20
    assert fronts >= 3 and behind >= 10  # both kinds were drawn, and only front ones cut the mask


def test_painted_backgrounds_flatten_a_photo_into_few_colours():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    photo = np.asarray(Image.fromarray(photo).resize((320, 240), Image.BICUBIC))
    for _ in range(4):
        out = hard_cases.painted(rng, photo)
        assert out.shape == photo.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - photo).mean() > 5  # it changed the picture


def test_the_stream_draws_hard_cases_at_its_share():
    photos = [np.asarray(Image.new("RGB", (300, 200), (40, 80, 200)))]
    stream = CompositeStream(96, [_figure(f"g{i}") for i in range(3)], photos, hard_cases=0.5, seed=0)
    drawn = [stream.composite() for _ in range(40)]
    hard = [c for c in drawn if "framing" in c.extra]
    assert 10 <= len(hard) <= 30
    assert all(c.mask.shape == c.image.shape[:2] for c in drawn)
