"""Held-out figures and CPU time of a cutout model served by ONNX Runtime (not a test).

    python scripts/eval_cutout_onnx.py MODEL_DIR DATA [--size N] [--threads 2] [--time-reps 5]

DATA as in `flask evaluate cutout`: demo-cast (its test split), portraits-dev, live2d-characters,
live2d-poses or a folder. Runs
the same evaluator (IoU, MAE of the served alpha and of the raw map, max F-beta, overlay sheets)
on app/inference/onnx_runner.py's OnnxCutout instead of the torch Cutter, then times
`probability` on a 1920 x 1080 picture (`--torch`: the torch Cutter too, for torch-format
models; `--npm-file`: isnet-general's original npm file at 1024 instead of its served export).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.inference.onnx_runner import OnnxCutout  # noqa: E402
from app.training import cutout_eval  # noqa: E402
from app.training.cutout_data import heldout  # noqa: E402


def runner_for(model_dir, size, threads, npm_file=False):
    """OnnxCutout for a model directory at `size` (None: the card's); `npm_file`: isnet-general's
    original npm file instead of its served export (fixed at 1024)."""
    if npm_file:
        from app.build import isnet_general

        return OnnxCutout(Path(model_dir) / isnet_general.NPM_FILE,
                          dict(isnet_general.PREPROCESS, size=1024), threads=threads, name="isnet-general npm file")
    return OnnxCutout.load(model_dir, threads=threads, size=size)


def time_1080p(runner, reps):
    """(median wall ms, min wall ms, median CPU ms) of probability() on a 1920 x 1080 photo, after
    one warm-up run. CPU time (all threads of this process) is the figure that a busy, shared
    machine disturbs least."""
    photo = ROOT / ".cache" / "demo_cast" / "backgrounds" / "uni.jpg"
    if photo.is_file():
        rgb = np.asarray(Image.open(photo).convert("RGB").resize((1920, 1080)))
    else:
        rgb = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    runner.probability(rgb)
    wall, cpu = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        runner.probability(rgb)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("data", nargs="?", default=None, help="omit to time only")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--npm-file", action="store_true",
                        help="isnet-general: run the original npm file (1024) instead of model.onnx")
    parser.add_argument("--record", action="store_true",
                        help="write the figures into the model's card under metrics.sets.DATA "
                             "(tuned.json too for a tuned IS-Net)")
    parser.add_argument("--torch", action="store_true",
                        help="also time the torch Cutter on the same picture (torch-format models)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runner = runner_for(args.model_dir, args.size, args.threads, args.npm_file)
    result = {"model": runner.name, "size": runner.input_size, "threads": args.threads}
    if args.data:
        description, pairs = heldout(args.data, args.count)
        out = args.out or ROOT / "runs" / "eval-onnx" / f"{result['model']}-{runner.input_size}-{args.data}"
        report = cutout_eval.evaluate(runner, pairs, out)
        result.update(data=args.data, heldout=description, out=str(out),
                      **{k: round(v, 4) if isinstance(v, float) else v
                         for k, v in report.items() if k != "groups"})
    if args.time_reps:
        median, best, cpu = time_1080p(runner, args.time_reps)
        result.update(ms_1080p_median=round(median), ms_1080p_min=round(best),
                      cpu_ms_1080p=round(cpu), reps=args.time_reps)
        if args.torch:
            from app.inference.cutout import Cutter

            median, best, cpu = time_1080p(Cutter.load(args.model_dir), args.time_reps)
            result.update(torch_ms_1080p_median=round(median), torch_ms_1080p_min=round(best),
                          torch_cpu_ms_1080p=round(cpu))
    if args.record and args.data:
        record(args.model_dir, args.data, {k: result[k] for k in
                                           ("heldout", "size", "count", "iou", "mae", "mae_raw",
                                            "max_fbeta", "worst_iou")})
    print(json.dumps(result))


def record(model_dir, data, figures):
    """Put one held-out set's figures in the model's card (metrics.sets), where the card is ours to
    write: a committed card.json, or a tuned IS-Net's tuned.json and its built card."""
    from app.build import isnet_tuned
    from app.storage.model_dirs import load_card, write_card

    tuned = (Path(model_dir) / isnet_tuned.TUNED_CARD).is_file()
    card = (json.loads((Path(model_dir) / isnet_tuned.TUNED_CARD).read_text()) if tuned
            else load_card(model_dir))
    metrics = dict(card.get("metrics", {}))
    metrics["sets"] = dict(metrics.get("sets", {}), **{data: figures})
    if tuned:
        isnet_tuned.set_metrics(model_dir, metrics)
    else:
        write_card(model_dir, dict(card, metrics=metrics))


if __name__ == "__main__":
    main()
