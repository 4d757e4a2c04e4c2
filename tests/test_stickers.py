"""Animated pictures (issue 31): GIF, animated WebP and APNG in within budgets, cut out frame by
frame by the real demo-cutout model (still parts' maps kept), and stickers out in every format
with their frame count, timing and loop; through /api/cutout within the request, and as a job on
the real queue run by a real `flask worker`, cancelled mid-way."""
import io
import json
import time
import zipfile

import numpy as np
import pytest
from conftest import needs_cutout
from PIL import Image
from queue_support import worker

from app.demo_data import animated
from app.errors import APIError
from app.inference import animation, stickers
from app.inference.cutout import Cutter
from app.inference.tracks import box_iou
from app.jobs import files

DELAYS = [60, 80, 100, 120, 140]


def moving_frames(count=5, size=(96, 72), seed=0):
    """RGB frames of a pink ellipse sliding over a still blotchy background: every frame differs."""
    width, height = size
    rng = np.random.default_rng(seed)
    blotches = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    background = np.asarray(blotches.resize((width, height), Image.Resampling.BICUBIC)).copy()
    yy, xx = np.mgrid[:height, :width]
    frames = []
    for t in range(count):
        pixels = background.copy()
        cx = width * (0.35 + 0.3 * t / max(1, count - 1))
        pixels[((xx - cx) / (width / 5)) ** 2 + ((yy - height / 2) / (height / 3)) ** 2 < 1] = (230, 80, 120)
        frames.append(pixels)
    return frames


def budgets(**changes):
    b = animation.Budgets.from_config({})
    for key, value in changes.items():
        setattr(b, key, value)
    return b


def played(data):
    """(frame count, delays in ms, loop or None, mode) of an animated file as Pillow plays it."""
    with Image.open(io.BytesIO(data)) as image:
        delays = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            image.load()
            delays.append(int(image.info.get("duration", 0)))
        return len(delays), delays, image.info.get("loop"), image.mode


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
@pytest.mark.parametrize("loop", [0, 3])
def test_each_format_is_read_with_its_frames_timing_and_loop(fmt, loop):
    data = animated.save(moving_frames(), DELAYS, fmt, loop=loop)
    assert animation.is_animation(data)
    clip = animation.decode_animation(data, budgets())
    assert len(clip.frames) == 5 and clip.durations == DELAYS and clip.loop == loop
    assert clip.source_format == ("PNG" if fmt == "PNG" else fmt) and clip.size == (96, 72)
    assert all(f.mode == "RGBA" and f.size == (96, 72) for f in clip.frames)
    # The frames are the pictures sent (GIF: within its palette).
    sent = moving_frames()
    worst = max(np.abs(np.asarray(f)[..., :3].astype(int) - s).mean() for f, s in zip(clip.frames, sent))
    assert worst < (12 if fmt != "PNG" else 0.01)


def test_a_gif_without_a_loop_count_plays_once_and_stays_so():
    frames = [Image.fromarray(f).quantize(64) for f in moving_frames(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=DELAYS[:3])  # no NETSCAPE
    data = out.getvalue()
    clip = animation.decode_animation(data, budgets())
    assert clip.loop is None and clip.durations == DELAYS[:3]
    sticker = stickers.encode(clip.frames, clip.durations, clip.loop, "gif")
    assert played(sticker)[2] is None
    assert played(stickers.encode(clip.frames, clip.durations, clip.loop, "webp"))[2] == 1  # once


def test_still_pictures_are_not_animations():
    png = io.BytesIO()
    Image.fromarray(moving_frames(1)[0]).save(png, "PNG")
    assert not animation.is_animation(png.getvalue())
    assert animation.is_animation(animated.save(moving_frames(1), [100], "GIF"))  # any GIF is


def corrupt_after(data, frames_kept):
    """The GIF with an impossible LZW code size in every frame after the first `frames_kept`:
    decoding those frames fails (400) though the file's block structure is intact."""
    out, index, seen = bytearray(data), 0, 0
    while True:
        index = out.find(b"\x2c", index + 1)  # an image descriptor ...
        if index < 0:
            return bytes(out)
        if out[index - 8:index - 6] == b"\x21\xf9":  # ... right after a graphic control extension
            seen += 1
            if seen > frames_kept:
                packed = out[index + 9]  # a local colour table may follow the descriptor
                out[index + 10 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)] = 15


def test_budgets_refuse_before_decoding_everything():
    data = animated.save(moving_frames(10), [1000] * 10, "GIF")
    broken = corrupt_after(data, 3)
    with pytest.raises(APIError) as bad:  # the broken frames are really broken ...
        animation.decode_animation(broken, budgets())
    assert bad.value.status == 400 and bad.value.code == "bad_image"
    # ... yet past a budget the refusal comes first: counted from headers, or as delays add up.
    with pytest.raises(APIError) as err:
        animation.decode_animation(broken, budgets(frames=4))
    assert err.value.status == 413 and err.value.code == "too_many_frames"
    with pytest.raises(APIError) as err:
        animation.decode_animation(broken, budgets(seconds=2.5))
    assert err.value.status == 413 and err.value.code == "animation_too_long"
    with pytest.raises(APIError) as err:
        animation.decode_animation(data, budgets(frame_pixels=96 * 71))
    assert err.value.code == "image_too_large"
    with pytest.raises(APIError) as err:
        animation.decode_animation(data, budgets(total_pixels=96 * 72 * 9))
    assert err.value.code == "animation_too_large"
    # Frames are scaled down on arrival to the side budget.
    assert animation.decode_animation(data, budgets(max_side=48)).size == (48, 36)


@pytest.fixture(scope="module")
def cutter():
    from conftest import ROOT
    return Cutter.load(ROOT / "models" / "demo-cutout")


@needs_cutout
@pytest.mark.parametrize("fmt", ["webp", "apng", "gif", "zip"])
def test_each_sticker_format_keeps_frames_timing_loop_and_transparency(cutter, fmt):
    data = animated.save(moving_frames(), DELAYS, "WEBP", loop=2)
    body, description = stickers.make_sticker(data, cutter, budgets(), fmt=fmt, matte=(0, 255, 0))
    assert description["frames"] == 5 and description["durations_ms"] == DELAYS and description["loop"] == 2
    assert description["mimetype"] == stickers.FORMATS[fmt][0]
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            assert json.loads(z.read("timing.json")) == {"durations_ms": DELAYS, "loop": 2}
            alphas = [np.asarray(Image.open(io.BytesIO(z.read(f"{i:04d}.png"))))[..., 3] for i in range(5)]
    else:
        count, delays, loop, _mode = played(body)
        assert (count, delays, loop) == (5, DELAYS, 2)
        with Image.open(io.BytesIO(body)) as image:
            alphas = []
            for index in range(5):
                image.seek(index)
                alphas.append(np.asarray(image.convert("RGBA"))[..., 3])
    for alpha in alphas:
        assert alpha.min() == 0 and alpha.max() > 128  # a figure kept, a background made transparent
        if fmt == "gif":
            assert set(np.unique(alpha)) == {0, 255}  # GIF: 1-bit alpha
    if fmt == "gif":  # soft edges were laid over the matte: green shows in kept pixels' colours
        with Image.open(io.BytesIO(body)) as image:
            assert (0, 255, 0) in [tuple(image.getpalette()[i:i + 3]) for i in range(0, 768, 3)]


def mask_iou(a, b):
    return np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum())


def trained_character_clip(frames=8, size=(480, 360)):
    """A clip of a test pose (pose_id % 10 == 9: never trained on) of a character the demo head knows."""
    from conftest import ROOT
    png = ROOT / ".cache" / "live2d" / "haru-01" / "0009.png"
    if not png.exists():
        pytest.skip(f"no Live2D render {png}: run `flask --app wsgi demo render`")
    meta = json.loads(png.with_suffix(".json").read_text())
    figure = np.asarray(Image.open(png).convert("RGBA"))
    background = Image.fromarray(moving_frames(1, (48, 36))[0]).resize(size)
    clip = animated.composite(figure, np.asarray(background), size=size, frames=frames, bob=1.0,
                              face_box=meta["face_box"])
    clip.background = background  # the frame without the figure
    return clip


@needs_cutout
def test_a_one_frame_blip_goes_a_lasting_change_stays_and_still_frames_skip_the_network(cutter):
    clip = trained_character_clip(1, size=(240, 180))
    figure, background = clip.frames[0], np.asarray(clip.background)
    blip = [background, background, figure, background, background, background]
    lasting = [background, background, figure, figure, figure, figure]
    for frames, kept in ((blip, False), (lasting, True)):
        stable = stickers.StickerCutter(cutter)
        single = stickers.StickerCutter(cutter, stable=False)
        masks = [a for _f, a in stable.alphas(Image.fromarray(f) for f in frames)]
        independent = [a for _f, a in single.alphas(Image.fromarray(f) for f in frames)]
        assert len(masks) == 6 and single.forwards == 6
        assert stable.forwards == (3 if not kept else 2)  # a frame like the one before is not run again
        shown = independent[2] >= 128
        assert 0.05 < shown.mean() < 0.6  # the network does find the figure in frame 2
        if kept:  # taken at once, in the very frame it appeared
            assert mask_iou(masks[2] >= 128, shown) > 0.97
        else:  # gone: frame 2 looks like its neighbours
            assert ((masks[2] >= 128) != (masks[1] >= 128)).mean() < 0.01


def headless_distractor_clip(frames=4, size=(640, 360)):
    """The haru clip above with a headless copy of the figure at the right edge: a figure-like
    thing the network marks, where no face lies. Returns (frames, the distractor's box)."""
    from conftest import ROOT
    png = ROOT / ".cache" / "live2d" / "haru-01" / "0009.png"
    if not png.exists():
        pytest.skip(f"no Live2D render {png}: run `flask --app wsgi demo render`")
    face = json.loads(png.with_suffix(".json").read_text())["face_box"]
    figure = Image.open(png).convert("RGBA")
    body = figure.crop((0, face[1] + face[3] + 10, figure.width, figure.height))
    body = body.resize((round(body.width * 0.5 * size[1] / body.height), round(size[1] * 0.5)))
    background = Image.fromarray(moving_frames(1, (48, 36))[0]).resize(size)
    clip = animated.composite(np.asarray(figure), np.asarray(background), size=size, frames=frames, bob=1.0,
                              face_box=face)
    x, y = size[0] - body.width - 5, size[1] - body.height - 5
    out = []
    for frame in clip.frames:
        image = Image.fromarray(frame).convert("RGBA")
        image.alpha_composite(body, (x, y))
        out.append(image.convert("RGB"))
    return out, (x, y, body.width, body.height)


@needs_cutout
def test_each_frames_faces_as_prompts_drop_what_no_face_lies_on(cutter):
    frames, (x, y, w, h) = headless_distractor_clip()
    plain = [a for _f, a in stickers.StickerCutter(cutter).alphas(frames)]
    prompted_cut = stickers.StickerCutter(cutter, prompt=True)
    prompted = [a for _f, a in prompted_cut.alphas(frames)]
    assert prompted_cut.faces  # the cascade found the figure's face
    for a, b in zip(plain, prompted):
        assert (a[y:y + h, x:x + w] > 128).mean() > 0.01  # the network marks the headless body ...
        assert (b[y:y + h, x:x + w] > 128).sum() == 0     # ... which no face lies on: dropped
        outside = np.ones(a.shape, bool)
        outside[y:y + h, x:x + w] = False
        assert (a > 128).sum() > 5000 and np.abs(a.astype(int) - b)[outside].mean() < 0.5  # the figure stays


@needs_cutout
def test_api_cutout_takes_faces_as_prompts_for_an_animation_when_asked(make_app):
    frames, (x, y, w, h) = headless_distractor_clip()
    gif = animated.save([np.asarray(f) for f in frames], [100] * len(frames), "GIF")
    client = make_app().test_client()
    kept = {}
    for query in ("", "?prompt=1"):
        response = post(client, gif, query + ("&" if query else "?") + "format=zip")
        assert response.status_code == 200, response.data
        with zipfile.ZipFile(io.BytesIO(response.data)) as z:
            alphas = [np.asarray(Image.open(io.BytesIO(z.read(f"{i:04d}.png"))))[..., 3] for i in range(len(frames))]
        kept[query] = [(a[y:y + h, x:x + w] > 128).sum() for a in alphas]
    # Off unless asked; asked, the headless body is gone (a pixel or two of GIF noise may stay).
    assert all(n > 100 for n in kept[""]) and sum(kept["?prompt=1"]) < 0.01 * sum(kept[""])


def post(client, data, query="", name="clip.gif"):
    return client.post(f"/api/cutout{query}", data={"image": (io.BytesIO(data), name)})


@needs_cutout
def test_api_cutout_answers_a_small_animation_with_the_sticker(make_app):
    client = make_app().test_client()
    response = post(client, animated.save(moving_frames(), DELAYS, "GIF", loop=0))
    assert response.status_code == 200 and response.mimetype == "image/webp", response.data
    count, delays, loop, mode = played(response.data)
    assert (count, delays, loop, mode) == (5, DELAYS, 0, "RGBA")
    apng = post(client, animated.save(moving_frames(), DELAYS, "PNG"), "?format=apng&output=mask", "clip.png")
    assert apng.status_code == 200 and apng.mimetype == "image/apng" and played(apng.data)[0] == 5
    # A still picture is cut out as before: one PNG.
    png = io.BytesIO()
    Image.fromarray(moving_frames(1)[0]).save(png, "PNG")
    still = post(client, png.getvalue(), name="still.png")
    assert still.status_code == 200 and still.mimetype == "image/png"
    # animated=0 (the page, which shows one frame): an animated WebP is cut out as its first frame.
    first = post(client, animated.save(moving_frames(), DELAYS, "WEBP"), "?animated=0", "clip.webp")
    assert first.status_code == 200 and first.mimetype == "image/png" and played(first.data)[0] == 1
    gif = post(client, animated.save(moving_frames(), DELAYS, "GIF"), "?animated=0")
    assert gif.status_code == 415 and gif.get_json()["error"]["code"] == "unsupported_type"
    for query, code in (("?format=mov", "bad_option"), ("?matte=green", "bad_option"), ("?prompt=2", "bad_option")):
        bad = post(client, animated.save(moving_frames(), DELAYS, "GIF"), query)
        assert bad.status_code == 400 and bad.get_json()["error"]["code"] == code


@needs_cutout
def test_a_background_colour_makes_pictures_and_stickers_opaque_over_it(make_app):
    client = make_app().test_client()
    green = np.array([0, 255, 0])
    # A sticker: every frame opaque, the background (transparent without the option) now green.
    clear = post(client, animated.save(moving_frames(), DELAYS, "GIF", loop=0))
    response = post(client, animated.save(moving_frames(), DELAYS, "GIF", loop=0), "?background=00ff00")
    assert response.status_code == 200 and response.mimetype == "image/webp", response.data
    assert played(response.data)[:3] == (5, DELAYS, 0)
    with Image.open(io.BytesIO(clear.data)) as see_through, Image.open(io.BytesIO(response.data)) as opaque:
        for index in range(5):
            see_through.seek(index)
            opaque.seek(index)
            rgba = np.asarray(see_through.convert("RGBA")).astype(float)
            pixels = np.asarray(opaque.convert("RGBA")).astype(float)
            assert (pixels[..., 3] == 255).all()
            # The transparent sticker laid over green, up to WebP's loss.
            a = rgba[..., 3:] / 255
            expected = a * rgba[..., :3] + (1 - a) * green
            assert (a == 0).mean() > 0.2 and np.abs(pixels[..., :3] - expected).mean() < 4
            assert np.abs(pixels[..., :3] - green)[a[..., 0] > 0.5].sum(axis=-1).mean() > 100  # the figure stays
    # A GIF over a colour has no transparent pixels at all.
    gif = post(client, animated.save(moving_frames(), DELAYS, "GIF"), "?format=gif&background=0000ff")
    with Image.open(io.BytesIO(gif.data)) as image:
        for index in range(5):
            image.seek(index)
            assert (np.asarray(image.convert("RGBA"))[..., 3] == 255).all()
    # A picture: an opaque PNG over the colour, the same cutout otherwise.
    png = io.BytesIO()
    Image.fromarray(moving_frames(1)[0]).save(png, "PNG")
    cut = post(client, png.getvalue(), name="still.png")
    over = post(client, png.getvalue(), "?background=00ff00", name="still.png")
    assert over.status_code == 200 and over.mimetype == "image/png"
    with Image.open(io.BytesIO(cut.data)) as rgba, Image.open(io.BytesIO(over.data)) as rgb:
        assert rgb.mode == "RGB" and rgb.size == rgba.size
        alpha, pixels = np.asarray(rgba)[..., 3], np.asarray(rgb).astype(int)
        assert (alpha == 0).any() and (pixels[alpha == 0] == green).all()
        assert (pixels[alpha == 255] == np.asarray(rgba)[..., :3][alpha == 255]).all()
    # Bad colours, and a mask (which has no background), are a 400 with JSON.
    for query in ("?background=green", "?background=00ff00&output=mask"):
        for data, name in ((png.getvalue(), "still.png"), (animated.save(moving_frames(), DELAYS, "GIF"), "clip.gif")):
            bad = post(client, data, query, name)
            assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_option", (query, name)


@needs_cutout
def test_api_cutout_refuses_an_animation_past_its_budget_with_json(make_app):
    client = make_app(ANIMATION_MAX_FRAMES=3).test_client()
    response = post(client, animated.save(moving_frames(), DELAYS, "WEBP"), name="clip.webp")
    assert response.status_code == 413 and response.mimetype == "application/json"
    assert response.get_json()["error"]["code"] == "too_many_frames"


def wait_for(client, url, until, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.data
        job = response.get_json()["job"]
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job stuck: {job}"
        time.sleep(0.1)


def worker_env(app):
    return {"FLASK_REPORT_DIR": str(app.config["REPORT_DIR"]), "FLASK_CUTOUT_MODEL": "demo-cutout"}


@needs_cutout
def test_a_long_animation_becomes_a_job_a_worker_finishes(make_app, tmp_path):
    app = make_app(ANIMATION_INLINE_FRAMES=2)
    client = app.test_client()
    response = post(client, animated.save(moving_frames(), DELAYS, "GIF", loop=0), "?format=apng&background=0000ff")
    assert response.status_code == 202, response.data
    location = response.headers["Location"]
    job = response.get_json()["job"]
    assert location == f"/api/jobs/{job['id']}" and job["pictures"] == 5 and job["status"] == "queued"
    with worker(tmp_path, worker_env(app)) as w:
        done = wait_for(client, location, lambda j: j["status"] not in ("queued", "running"))
        assert done["status"] == "done", (done, w.output()[-3000:])
    assert done["progress"] == 1.0 and done["done"] == 5 and "zip" not in done
    sticker = done["sticker"]
    assert sticker["frames"] == 5 and sticker["durations_ms"] == DELAYS and sticker["mimetype"] == "image/apng"
    with client.get(sticker["url"]) as got:
        assert got.status_code == 200 and got.mimetype == "image/apng"
        assert played(got.data)[:3] == (5, DELAYS, 0)
        with Image.open(io.BytesIO(got.data)) as image:  # laid over the background asked for: opaque
            image.seek(2)
            assert (np.asarray(image.convert("RGBA"))[..., 3] == 255).all()
    assert not (files.folder(app, job["id"]) / "in").exists()  # the animation as sent is not kept


@needs_cutout
def test_a_batch_job_lays_its_cutouts_over_the_background_colour(make_app, tmp_path):
    app = make_app()
    client = app.test_client()
    png = io.BytesIO()
    Image.fromarray(moving_frames(1)[0]).save(png, "PNG")
    bad = client.post("/api/jobs?background=green", data={"images": [(io.BytesIO(png.getvalue()), "a.png")]})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_option"
    response = client.post("/api/jobs?background=00ff00", data={"images": [(io.BytesIO(png.getvalue()), "a.png")]})
    assert response.status_code == 202, response.data
    with worker(tmp_path, worker_env(app)) as w:
        done = wait_for(client, response.headers["Location"], lambda j: j["status"] not in ("queued", "running"))
        assert done["status"] == "done", (done, w.output()[-3000:])
    inline = post(client, png.getvalue(), "?background=00ff00", name="a.png")
    with client.get(done["results"][0]["url"]) as got, Image.open(io.BytesIO(got.data)) as queued:
        assert queued.mode == "RGB" and got.data == inline.data  # the same as /api/cutout answers


@needs_cutout
def test_a_cancelled_animation_job_stops_cleans_up_and_frees_the_worker(make_app, tmp_path):
    app = make_app(ANIMATION_INLINE_FRAMES=2, JOB_CLIENT_ACTIVE=5)
    client = app.test_client()
    long_clip = animated.save(moving_frames(120, (480, 360)), [50] * 120, "GIF")
    location = post(client, long_clip).headers["Location"]
    job_id = location.rsplit("/", 1)[1]
    with worker(tmp_path, worker_env(app)) as w:
        wait_for(client, location, lambda j: j["status"] == "running" and j["done"] >= 2, 90)
        cancelled = client.delete(location)
        assert cancelled.status_code == 200 and cancelled.get_json()["job"]["status"] == "cancelled"
        deadline = time.monotonic() + 20
        while files.folder(app, job_id).exists():  # stopped at the next frame, its files removed
            assert time.monotonic() < deadline, "a cancelled job's files stayed"
            time.sleep(0.1)
        # The worker is free: a small job sent now is done long before the long one would have been.
        short = post(client, animated.save(moving_frames(), DELAYS, "GIF")).headers["Location"]
        done = wait_for(client, short, lambda j: j["status"] not in ("queued", "running"), 60)
        assert done["status"] == "done", w.output()[-3000:]
    job = client.get(location).get_json()["job"]
    assert job["status"] == "cancelled" and job["done"] < 120


def test_faces_are_joined_into_tracks_across_frames_and_gaps():
    from app.inference import tracks

    left, right = (10, 10, 20, 20), (60, 10, 20, 20)
    frames = [[left, right], [right, (12, 11, 20, 20)], [], [(14, 12, 20, 20)], [(90, 50, 10, 10)]]
    linked = tracks.link(frames)
    # The left face (second in frame 1, missing in frame 2) is one track; the right one another;
    # the face of the last frame overlaps nothing and starts its own.
    assert sorted(linked) == [[(0, 0), (1, 1), (3, 0)], [(0, 1), (1, 0)], [(4, 0)]]
    votes = tracks.vote([{"predictions": [{"label": "a", "score": 0.9}, {"label": "b", "score": 0.1}]},
                         {"predictions": [{"label": "b", "score": 0.6}, {"label": "a", "score": 0.3}]},
                         {"predictions": [{"label": "a", "score": 0.8}]}], threshold=0.5)
    assert votes["predictions"][0] == {"label": "a", "score": round(2.0 / 3, 4), "source": "head"}
    assert votes["agreement"] == round(2 / 3, 4) and not votes["unknown"]
    assert tracks.vote([{"predictions": [{"label": "a", "score": 0.4}]}], threshold=0.5)["unknown"]


@needs_cutout
def test_an_animations_character_is_named_once_with_its_frames(make_app):
    client = make_app().test_client()
    clip = trained_character_clip()
    gif = animated.save(clip.frames, [100] * 8, "GIF")
    response = client.post("/api/animation/characters", data={"image": (io.BytesIO(gif), "haru.gif")})
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["frames"] == 8 and body["durations_ms"] == [100] * 8 and (body["width"], body["height"]) == (480, 360)
    assert len(body["characters"]) == 1
    haru = body["characters"][0]
    assert haru["predictions"][0]["label"] == "haru" and not haru["unknown"] and haru["frames"] == list(range(8))
    for (frame, x, y, w, h), truth in zip(haru["boxes"], clip.face_boxes):
        assert frame in haru["frames"] and box_iou((x, y, w, h), truth) > 0.3
    png = io.BytesIO()
    Image.fromarray(clip.frames[0]).save(png, "PNG")
    still = client.post("/api/animation/characters", data={"image": (io.BytesIO(png.getvalue()), "still.png")})
    assert still.status_code == 415 and still.get_json()["error"]["code"] == "unsupported_type"


def encode_clip(frames, fps, fmt, tmp_path):
    """An MP4 (H.264) or WebM (VP9) of RGB frames, made by the system's ffmpeg as a phone would."""
    import subprocess
    height, width = frames[0].shape[:2]
    out = tmp_path / f"clip.{fmt}"
    codec = ["-c:v", "libx264", "-pix_fmt", "yuv420p"] if fmt == "mp4" else \
        ["-c:v", "libvpx-vp9", "-deadline", "realtime"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0", *codec, str(out)],
                   input=b"".join(f.tobytes() for f in frames), check=True, timeout=60)
    return out.read_bytes()


needs_ffmpeg = pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="ffmpeg is not installed")


@needs_ffmpeg
@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_clips_are_read_with_their_frames_and_timing(fmt, tmp_path):
    data = encode_clip(moving_frames(10, (96, 72)), 10, fmt, tmp_path)
    assert animation.is_animation(data) and animation.check_header(data, budgets()) == 10
    clip = animation.decode_animation(data, budgets())
    assert len(clip.frames) == 10 and clip.durations == [100] * 10 and clip.loop == 0 and clip.size == (96, 72)
    sent = moving_frames(10, (96, 72))
    assert max(np.abs(np.asarray(f)[..., :3].astype(int) - s).mean() for f, s in zip(clip.frames, sent)) < 12
    # Past a budget the header says so: refused before a frame is decoded.
    for changes, code in (({"frames": 9}, "too_many_frames"), ({"seconds": 0.5}, "animation_too_long"),
                          ({"frame_pixels": 96 * 71}, "image_too_large"),
                          ({"total_pixels": 96 * 72 * 9}, "animation_too_large")):
        with pytest.raises(APIError) as err:
            animation.iter_frames(data, budgets(**changes))
        assert err.value.status == 413 and err.value.code == code
    broken = data[: len(data) // 3]
    with pytest.raises(APIError) as err:
        animation.decode_animation(broken, budgets())
    assert err.value.status == 400


@needs_cutout
@needs_ffmpeg
def test_api_cutout_turns_a_clip_into_a_sticker(make_app, tmp_path):
    client = make_app().test_client()
    response = post(client, encode_clip(moving_frames(5), 12, "mp4", tmp_path), name="clip.mp4")
    assert response.status_code == 200 and response.mimetype == "image/webp", response.data
    count, delays, loop, mode = played(response.data)
    assert (count, loop, mode) == (5, 0, "RGBA") and delays == [83] * 5
