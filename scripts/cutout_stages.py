"""Where a 1080p cutout's time goes, stage by stage, and the whole request against rembg (not a test).

    .venv/bin/python scripts/cutout_stages.py [MODEL_DIR] [--runs 5] [--threads 2] [--json out.json]
    .venv/bin/pip install -r scripts/benchmark-requirements.txt    # rembg, for the yardstick

Stages are the very functions /api/cutout runs, in its order, on a 1920 x 1080 JPEG of a drawn
picture: decode (imaging.decode_upload), the network input (resize and normalise), the forward
pass, the map back to picture size, faces as prompts, alpha post-processing, the RGBA picture,
edge decontamination, PNG encoding. Then the whole request through the app (Flask's test client,
no socket) and rembg's `remove()` with its `dis_custom` session on the same isnet-general weights
at 1024 (rembg loads custom files only from under U2NET_HOME: a link in a temporary folder),
timed in alternation so that other work on the machine slows both alike. Read the ratio.
"""
import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from drawn_picture import drawn_picture  # noqa: E402

from app.inference import imaging, prompts  # noqa: E402
from app.inference.cutout import Cutter, postprocess  # noqa: E402
from app.inference.decontaminate import decontaminate  # noqa: E402


def jpeg_1080p():
    """A drawn 1920 x 1080 picture as JPEG bytes (quality 90)."""
    img = drawn_picture(1920, 1080)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


class Upload:
    """What werkzeug hands the view: a file storage with a stream."""

    def __init__(self, data):
        self.stream = io.BytesIO(data)


def stages(cutter, data, faces, config):
    """{stage: seconds} for one cutout as /api/cutout makes it."""
    t = {}
    clock = time.perf_counter
    s = clock()
    image = imaging.decode_upload(Upload(data), config, max_pixels=int(config["MAX_CUTOUT_PIXELS"]))
    rgb = np.asarray(image.convert("RGB"))
    t["decode"] = clock() - s
    runner = cutter.runner
    s = clock()
    x = runner.tensor(rgb)
    t["network input"] = clock() - s
    s = clock()
    raw = runner.run(x)
    t["forward"] = clock() - s
    s = clock()
    prob = runner.finish(raw, *rgb.shape[:2])
    t["map to picture size"] = clock() - s
    s = clock()
    prob = prompts.keep_figures(prob, faces)
    t["faces as prompts"] = clock() - s
    s = clock()
    alpha = postprocess(prob, clean=True)
    t["alpha"] = clock() - s
    s = clock()
    rgba = image.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha))
    rgba = np.asarray(rgba)
    t["RGBA picture"] = clock() - s
    s = clock()
    rgba = decontaminate(rgba)
    t["decontaminate"] = clock() - s
    s = clock()
    imaging.png_bytes(rgba)
    t["PNG encoding"] = clock() - s
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, default=ROOT / "models" / "isnet-anime")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from app import create_app
    app = create_app({"TESTING": True, "REPORT_DIR": tempfile.mkdtemp(), "CUTOUT_MODEL": str(args.model_dir),
                      "TORCH_THREADS": args.threads})
    cutter = Cutter.load(args.model_dir, threads=args.threads)
    data = jpeg_1080p()
    faces = [(300, 200, 120, 120)]
    per_stage = {}
    cutter.probability(np.zeros((64, 64, 3), np.uint8))  # warm-up
    for _ in range(args.runs):
        for name, seconds in stages(cutter, data, faces, app.config).items():
            per_stage.setdefault(name, []).append(seconds * 1000)
    rows = {name: round(statistics.median(v), 1) for name, v in per_stage.items()}
    total = sum(rows.values())
    print(f"{args.model_dir.name} at {cutter.input_size} px, 1920 x 1080 JPEG, {args.threads} threads, "
          f"median of {args.runs}")
    for name, ms in rows.items():
        print(f"  {name:22s} {ms:8.1f} ms  {100 * ms / total:5.1f}%")
    print(f"  {'sum':22s} {total:8.1f} ms")

    # The whole request in the app, and rembg on the same picture, in alternation.
    client = app.test_client()

    def ours():
        r = client.post("/api/cutout?clean=1&decontaminate=1", data={"image": (io.BytesIO(data), "p.jpg"),
                                                                      "faces": "300,200,120,120"})
        assert r.status_code == 200, r.data[:200]

    variants = {"ours (whole request)": ours}
    rembg_note = None
    try:
        import rembg
        home = Path(tempfile.mkdtemp())
        from app.build import isnet_general
        source = ROOT / "models" / isnet_general.NAME / isnet_general.NPM_FILE  # the file rembg users run
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing (scripts/setup.sh makes it)")
        (home / "isnet-general.onnx").symlink_to(source)
        os.environ["U2NET_HOME"] = str(home)
        session = rembg.new_session("dis_custom", model_path=str(home / "isnet-general.onnx"))
        picture = Image.open(io.BytesIO(data))
        picture.load()

        def theirs():
            out = rembg.remove(picture, session=session)
            buf = io.BytesIO()
            out.save(buf, format="PNG")

        variants[f"rembg remove() + PNG ({source.name})"] = theirs
    except Exception as exc:  # rembg is a benchmark-only extra
        rembg_note = f"rembg not timed: {exc}"
    for fn in variants.values():
        fn()  # warm-up
    times = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, fn in variants.items():
            s = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - s) * 1000)
    medians = {name: round(statistics.median(v)) for name, v in times.items()}
    for name, ms in medians.items():
        print(f"  {name:40s} {ms:6d} ms")
    if rembg_note:
        print(rembg_note)
    elif len(medians) == 2:
        a, b = medians.values()
        print(f"  rembg / ours = {b / a:.2f} (above 1: ours is faster)")
    if args.json:
        args.json.write_text(json.dumps({"stages_ms": rows, "requests_ms": medians, "note": rembg_note}, indent=2))


if __name__ == "__main__":
    main()
