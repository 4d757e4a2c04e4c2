"""The animated-sticker figures of issue 31, on composites of Live2D characters no model trained on.

    nice -n 10 .venv/bin/python scripts/sticker_bench.py [--model isnet-anime] [--characters unitychan z16 epsilon]
        [--frames 24] [--size 640x480] [--json out.json] [--time-only] [--prompt]

For each bench character (live2d.cast.BENCH_FIGURES, test split; rendered by `flask --app wsgi
bench fetch`) and each background (still, panning), a clip of --frames frames at 12 fps is made
(app/demo_data/animated.py), sent through GIF encoding as a user would send it, and decoded by
the server's reader. Then every frame is cut out twice with the same model: frame by frame as
single pictures (the /api/cutout path), and by the sticker cutter (still parts' maps kept).

- IoU: per frame, alpha >= 128 against the true alpha >= 128; the mean for each way, and the
  largest per-frame drop of the sticker's IoU below the single picture's.
- Flicker: the mean absolute change of alpha (0-1) between consecutive frames, over the pixels
  whose true alpha did not change; the sticker's over the single pictures'.
- Naming (--naming): a track's name from its frames' votes against each frame named alone.
- Time: bytes in to bytes out for one 2-second 480p 12 fps GIF (decode, cut out, animated WebP
  out), wall clock and CPU seconds on this machine (run under whatever `nice` it was started
  with; the load average is recorded beside it), with a still and with a panning background.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import cutout_threads  # noqa: E402
from app.demo_data import animated  # noqa: E402
from app.inference import animation, stickers  # noqa: E402
from app.inference.cutout import Cutter  # noqa: E402

TEST_CHARACTERS = ("unitychan", "z16", "epsilon")  # app/field_bench/sources.py LIVE2D["test"]


def clip_frames(clip, fmt="GIF"):
    """The clip as the server decodes it, one decoded frame per clip frame (a frame an encoder
    merged with the one before, being identical, counts as often as its delay covers)."""
    data = animated.save(clip.frames, clip.durations, fmt)
    decoded = animation.decode_animation(data, animation.Budgets.from_config({}))
    step = clip.durations[0]
    frames = []
    for frame, delay in zip(decoded.frames, decoded.durations):
        frames += [frame] * max(1, round(delay / step))
    assert len(frames) == len(clip.frames), (len(frames), len(clip.frames))
    return data, frames


def iou(alpha, truth):
    a, t = alpha >= 128, truth >= 128
    union = np.logical_or(a, t).sum()
    return float(np.logical_and(a, t).sum() / union) if union else 1.0


def flicker(alphas, truths):
    """Mean |alpha_t - alpha_t-1| (0-1) where the true alpha did not change, and that pixel count."""
    total, count = 0.0, 0
    for t in range(1, len(alphas)):
        still = truths[t] == truths[t - 1]
        diff = np.abs(alphas[t].astype(np.int16) - alphas[t - 1].astype(np.int16))[still]
        total += float(diff.sum()) / 255.0
        count += int(still.sum())
    return total / max(1, count)


def measure(cutter, clip, frames, prompt=False):
    out = {}
    for name, stable in (("single", False), ("sticker", True)):
        cut = stickers.StickerCutter(cutter, stable=stable, prompt=prompt)
        start = time.perf_counter()
        alphas = [alpha for _frame, alpha in cut.alphas(frames)]
        out[name] = {"seconds": round(time.perf_counter() - start, 2), "network_frames": cut.forwards,
                     "iou": [iou(a, t) for a, t in zip(alphas, clip.alphas)],
                     "flicker": flicker(alphas, clip.alphas)}
    drops = [s - k for s, k in zip(out["single"]["iou"], out["sticker"]["iou"])]
    return {"iou_single": round(float(np.mean(out["single"]["iou"])), 4),
            "iou_sticker": round(float(np.mean(out["sticker"]["iou"])), 4),
            "iou_worst_drop": round(max(drops), 4),
            "flicker_single": round(out["single"]["flicker"], 5),
            "flicker_sticker": round(out["sticker"]["flicker"], 5),
            "flicker_ratio": round(out["sticker"]["flicker"] / max(out["single"]["flicker"], 1e-9), 3),
            "network_frames": [out["single"]["network_frames"], out["sticker"]["network_frames"]],
            "seconds": [out["single"]["seconds"], out["sticker"]["seconds"]]}


def time_gif(cutter, size, frames, character, moving_background=False, prompt=False):
    """Seconds from GIF bytes to animated WebP bytes for a 2-second clip at 12 fps: wall clock, and
    this process's CPU time (what a shared machine's other load does not inflate)."""
    figure, face, source = animated.bench_figure(character)
    clip = animated.composite(figure, animated.bench_background(1), size=size, frames=frames, face_box=face,
                              source=source, moving_background=moving_background)
    data = animated.save(clip.frames, clip.durations, "GIF")
    start, cpu = time.perf_counter(), time.process_time()
    body, description = stickers.make_sticker(data, cutter, animation.Budgets.from_config({}), prompt=prompt)
    return {"seconds": round(time.perf_counter() - start, 2), "cpu_seconds": round(time.process_time() - cpu, 2),
            "load_average": [round(v, 2) for v in os.getloadavg()], "gif_bytes": len(data),
            "webp_bytes": len(body), "frames": description["frames"],
            "network_frames": description["network_frames"], "size": list(size)}


def checkerboard(size, cell=12):
    """An RGB checkerboard, the usual backdrop for transparency."""
    w, h = size
    yy, xx = np.mgrid[:h, :w]
    light = ((xx // cell + yy // cell) % 2 == 0)[..., None]
    return np.where(light, 230, 170).astype(np.uint8).repeat(3, axis=2)


def look(cutter, character, path, size=(320, 240), frames=12):
    """First, middle and last frame of a sticker (animated WebP, as served) over a checkerboard, side
    by side in one PNG at `path`."""
    import io

    from PIL import Image

    figure, face, source = animated.bench_figure(character)
    clip = animated.composite(figure, animated.bench_background(3), size=size, frames=frames, face_box=face,
                              source=source, moving_background=True, bob=1.0)
    body, _description = stickers.make_sticker(animated.save(clip.frames, clip.durations, "GIF"), cutter,
                                               animation.Budgets.from_config({}))
    sheet = Image.new("RGB", (size[0] * 3, size[1] * 2))
    with Image.open(io.BytesIO(body)) as sticker:
        for column, index in enumerate((0, sticker.n_frames // 2, sticker.n_frames - 1)):
            sticker.seek(index)
            frame = sticker.convert("RGBA")
            board = Image.fromarray(checkerboard(size)).convert("RGBA")
            board.alpha_composite(frame)
            sheet.paste(Image.fromarray(clip.frames[index]), (column * size[0], 0))  # the GIF as sent, above
            sheet.paste(board.convert("RGB"), (column * size[0], size[1]))
    sheet.save(path)
    return path


NAMING_FIGURES = ("chitose-default", "haru-01", "haru-02", "hibiki-default", "koharu-default", "shizuku-default")


def naming(poses=(9, 19, 29, 39), frames=12, size=(480, 360)):
    """Per track against per frame, through the app's own endpoints: each test pose (pose_id % 10 ==
    9: the head never trained on it) of each character the demo head knows, as a clip; a frame is
    named as a single picture (POST /api/faces, then /api/identify on each face's crop), the clip
    by POST /api/animation/characters. Right = the first answer is the character and not unknown."""
    import io
    import tempfile

    from PIL import Image

    from app import create_app
    from app.config import CACHE_ROOT

    app = create_app({"TESTING": True, "REPORT_DIR": tempfile.mkdtemp(), "CUTOUT_MODEL": "demo-cutout"})
    client = app.test_client()
    rows = []
    for figure_dir in NAMING_FIGURES:
        for pose in poses:
            png = CACHE_ROOT / "live2d" / figure_dir / f"{pose:04d}.png"
            if not png.exists():
                continue
            character = figure_dir.split("-")[0]
            meta = json.loads(png.with_suffix(".json").read_text())
            figure = np.asarray(Image.open(png).convert("RGBA"))
            clip = animated.composite(figure, animated.bench_background(pose), size=size, frames=frames,
                                      bob=1.0, face_box=meta["face_box"])
            single = []
            for frame in clip.frames:
                buf = io.BytesIO()
                Image.fromarray(frame).save(buf, "PNG")
                found = client.post("/api/faces", data={"image": (io.BytesIO(buf.getvalue()), "f.png")}).get_json()
                if not found["faces"]:
                    single.append(False)
                    continue
                x, y, w, h = (found["faces"][0][k] for k in "xywh")
                crop = io.BytesIO()
                Image.fromarray(frame).crop((x, y, x + w, y + h)).save(crop, "PNG")
                answer = client.post("/api/identify", data={"faces": [(io.BytesIO(crop.getvalue()), "c.png")]})
                face = answer.get_json()["faces"][0]
                single.append(not face["unknown"] and face["predictions"][0]["label"] == character)
            gif = animated.save(clip.frames, clip.durations, "GIF")
            body = client.post("/api/animation/characters", data={"image": (io.BytesIO(gif), "c.gif")}).get_json()
            tracks = body["characters"]
            first = tracks[0] if tracks else None  # the track seen in most frames
            track_right = bool(first) and not first["unknown"] and first["predictions"][0]["label"] == character
            rows.append({"clip": f"{figure_dir}#{pose}", "single_right": round(float(np.mean(single)), 4),
                         "track_right": track_right, "tracks": len(tracks)})
            print(rows[-1], flush=True)
    return {"clips": rows, "single_accuracy": round(float(np.mean([r["single_right"] for r in rows])), 4),
            "track_accuracy": round(float(np.mean([r["track_right"] for r in rows])), 4)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="isnet-anime")
    parser.add_argument("--characters", nargs="+", default=list(TEST_CHARACTERS))
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--json")
    parser.add_argument("--time-only", action="store_true")
    parser.add_argument("--prompt", action="store_true",
                        help="each frame's faces (the picture cascade) as prompts, for single pictures and stickers")
    parser.add_argument("--naming", action="store_true", help="measure naming per track against per frame, and stop")
    parser.add_argument("--look", help="write first/middle/last frame of a sticker over a checkerboard here, and stop")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    if args.naming:
        result = naming()
        print("naming:", {k: v for k, v in result.items() if k != "clips"})
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        return result
    threads = cutout_threads({})
    cutter = Cutter.load(ROOT / "models" / args.model, threads=threads)
    if args.look:
        print(look(cutter, args.characters[0], args.look))
        return None
    report = {"model": args.model, "prompt": args.prompt, "threads": threads, "niceness": os.nice(0),
              "frames": args.frames,
              "size": list(size), "clips": {}}
    # A sticker (the figure bobs, then rests: the GIF holds fewer frames) and the worst case (the
    # background pans: every frame differs and goes through the network).
    report["time_2s_480p_12fps_gif"] = {
        "still_background": time_gif(cutter, size, args.frames, args.characters[0], prompt=args.prompt),
        "panning_background": time_gif(cutter, size, args.frames, args.characters[0], moving_background=True,
                                       prompt=args.prompt)}
    print("time:", report["time_2s_480p_12fps_gif"], flush=True)
    if not args.time_only:
        for character in args.characters:
            figure, face, source = animated.bench_figure(character)
            for moving in (False, True):
                clip = animated.composite(figure, animated.bench_background(2), size=size, frames=args.frames,
                                          moving_background=moving, face_box=face, source=source)
                _data, frames = clip_frames(clip)
                key = f"{character}/{'panning' if moving else 'still'}"
                report["clips"][key] = measure(cutter, clip, frames, args.prompt)
                print(key, report["clips"][key], flush=True)
        rows = list(report["clips"].values())
        report["summary"] = {
            "iou_single": round(float(np.mean([r["iou_single"] for r in rows])), 4),
            "iou_sticker": round(float(np.mean([r["iou_sticker"] for r in rows])), 4),
            "iou_worst_drop": max(r["iou_worst_drop"] for r in rows),
            "flicker_ratio_mean": round(float(np.mean([r["flicker_ratio"] for r in rows])), 3),
            "flicker_ratio_worst": max(r["flicker_ratio"] for r in rows)}
        print("summary:", report["summary"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
