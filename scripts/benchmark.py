"""Time the networks on this machine: ms per face for the backbones, ms per image for U2-Net.

    .venv/bin/python scripts/benchmark.py [--threads 2] [--runs 5]

Backbones are timed from PIL face crops to feature vectors (preprocessing included), at
batch 1 and batch 8; U2-Net and U2-NetP from a 1 x 3 x 320 x 320 tensor to the seven
outputs. Weights are random (timing does not depend on their values), so no download is
needed. Each figure is the median of --runs timed runs after one warm-up run.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.inference.backbones import SPECS, Backbone, configure_torch_threads  # noqa: E402
from app.inference.preprocess import face_batch  # noqa: E402
from app.nets.u2net import U2NET, U2NETP  # noqa: E402


def median_ms(fn, runs):
    """Median wall time of fn() in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def random_backbone(name):
    spec = SPECS[name]
    module = spec.build().eval()
    return Backbone(name, module, spec.input_size, spec.mean, spec.std, module.feature_dim, Path("-"), "-")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    threads = configure_torch_threads(args.threads)
    rng = np.random.default_rng(0)
    faces = [Image.fromarray(rng.integers(0, 256, (160, 140, 3), dtype=np.uint8)) for _ in range(8)]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {threads} thread(s), {os.cpu_count()} cores, "
          f"load average {load} (other processes share the CPU), median of {args.runs} runs")
    for name in ("efficientnet_lite0", "inception_v3"):
        backbone = random_backbone(name)
        for batch in (1, 8):
            ms = median_ms(lambda b=backbone, n=batch: b.features(face_batch(faces[:n], b)), args.runs)
            print(f"{name:20s} batch {batch}: {ms / batch:8.1f} ms per face ({backbone.input_size}px)")
    x = torch.randn(1, 3, 320, 320)
    for name, build in (("u2net", U2NET), ("u2netp", U2NETP)):
        net = build().eval()
        with torch.inference_mode():
            ms = median_ms(lambda n=net: n(x), args.runs)
        print(f"{name:20s} 320x320: {ms:8.1f} ms per image")


if __name__ == "__main__":
    main()
