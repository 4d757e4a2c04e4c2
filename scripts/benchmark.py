"""Time the networks on this machine in one run: identify (torch vs ONNX Runtime) and cutout
(ours vs rembg on the same network and weights). Not a test: figures depend on the machine.

    .venv/bin/python scripts/benchmark.py [--threads N] [--runs 7] [--json out.json]
    .venv/bin/pip install -r scripts/benchmark-requirements.txt    # rembg, for the yardstick

Prints a table, then the same figures as one JSON object (also written to --json).

Identify: ms per face from PIL face crops (160 x 140) to feature vectors, preprocessing
included, at batch 1 and batch 8, for each backbone: eager torch against the verified ONNX
export that serving uses. Inception-v3 uses its official weights when installed, else random
weights (timing does not depend on their values; the row says so).

Cutout: ms per picture (720 x 1024 and 1920 x 1080) from a PIL picture to the RGBA cut-out
(no PNG encoding), for each cutout model directory under models/: our Cutter through ONNX
Runtime as served (the card's size) and at the size rembg feeds (320 for U2-Net, 1024 for
IS-Net), our torch Cutter for torch cards, and rembg's `u2net_custom` / `dis_custom` session on
the very ONNX file we serve (rembg loads it from under U2NET_HOME: a link in a temporary folder).
PNG encoding of the cut-outs is timed on its own, against Pillow's default level.

Variants of one comparison are timed in alternation (run 1 of each, run 2 of each, ...), so
other work on a shared machine slows them alike: read the ratios, which come from one run.
Each figure is the median of --runs timed calls after one warm-up call.
"""
import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from drawn_picture import drawn_picture  # noqa: E402  (scripts/ is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.build import backbone_export  # noqa: E402
from app.config import resolve_path  # noqa: E402
from app.inference import backbone_onnx  # noqa: E402
from app.inference.imaging import png_bytes  # noqa: E402
from app.storage.model_dirs import ModelError, list_model_dirs, load_card  # noqa: E402

PICTURE_SIZES = ((720, 1024), (1920, 1080))  # width x height
REMBG_SIZE = {"u2net": 320, "u2netp": 320, "isnet": 1024}  # what rembg's sessions feed


def alternate(variants, runs):
    """{name: (median ms, min ms, median CPU ms)} of each fn() in `variants`, timed in alternation.

    CPU ms is this process's CPU time (all its threads): on a busy machine it shows what the
    work costs apart from the time spent waiting for a core.
    """
    times = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for fn in variants.values():
        fn()  # warm-up: first-call allocations, lazy initialisation
    for _ in range(runs):
        for name, fn in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append((time.process_time() - start_cpu) * 1000)
    return {name: (statistics.median(t), min(t), statistics.median(cpu[name])) for name, t in times.items()}


def machine(threads):
    import onnxruntime
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "cores": len(os.sched_getaffinity(0)), "threads": threads,
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__}


# ---------- identify ----------

def spread_inception_weights(path):
    """Random Inception-v3 weights whose batch norms are set from generated pictures (random
    initialisation alone gives activations that vanish layer by layer)."""
    import torch

    from app.inference.preprocess import face_arrays
    from app.nets.inception import IMAGENET_MEAN, IMAGENET_STD, Inception3

    net = Inception3()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(face_arrays(backbone_export.verification_faces(8, 299), 299,
                                         IMAGENET_MEAN, IMAGENET_STD)))
    torch.save(net.state_dict(), path)
    return path


def bench_identify(threads, runs, tmp):
    import torch

    from app import nets
    from app.build.backbones import face_batch, load_backbone

    faces = backbone_export.verification_faces(8, 160, seed=1)
    faces = [f.crop((10, 0, 150, 160)) for f in faces]  # 140 x 160, like a face box
    rows = []
    for name in nets.names("backbone"):
        try:
            weights, _ = backbone_onnx.weights_file(name)
            described, onnx_dir = "official", backbone_onnx.default_dir()
        except ModelError:
            weights = spread_inception_weights(Path(tmp) / f"{name}.pth") if name == "inception_v3" else None
            if weights is None:
                continue
            described, onnx_dir = "random (not installed; timing only)", Path(tmp) / "onnx"
        print(f"identify: {name} ({described} weights): exporting/loading ...", flush=True)
        backbone = load_backbone(name, weights)
        backbone_export.ensure_export(name, onnx_dir, weights)
        runner = backbone_onnx.load_onnx_backbone(name, onnx_dir, threads, weights_path=weights)
        _, record = backbone_onnx.check_export(onnx_dir, name, backbone.weights_sha256)
        for batch in (1, 8):
            crops = faces[:batch]

            def with_torch(crops=crops, backbone=backbone):
                with torch.inference_mode():
                    backbone.features(face_batch(crops, backbone))

            timed = alternate({"torch": with_torch,
                               "onnxruntime": lambda c=crops, r=runner: r.face_features(c)}, runs)
            rows.append({"backbone": name, "weights": described, "input": backbone.input_size, "batch": batch,
                         "torch_ms_per_face": round(timed["torch"][0] / batch, 2),
                         "onnxruntime_ms_per_face": round(timed["onnxruntime"][0] / batch, 2),
                         "onnxruntime_min_ms_per_face": round(timed["onnxruntime"][1] / batch, 2),
                         "torch_cpu_ms_per_face": round(timed["torch"][2] / batch, 2),
                         "onnxruntime_cpu_ms_per_face": round(timed["onnxruntime"][2] / batch, 2),
                         "speedup": round(timed["torch"][0] / timed["onnxruntime"][0], 2),
                         "export_check": {k: record["verified"][k] for k in ("max_abs_diff", "same_top1", "count")}})
    return rows


# ---------- cutout ----------

def picture(width, height, seed=0):
    """A test picture: a demo-cast backdrop when fetched, else a gradient; figures drawn on it."""
    return drawn_picture(width, height, seed)


def rembg_cutter(card, model_dir, onnx_path, home, threads):
    """rembg's session on our very ONNX file: picture -> RGBA via rembg.remove; or (None, why)."""
    os.environ["U2NET_HOME"] = str(home)  # rembg loads custom models only from under it
    try:
        import onnxruntime as ort
        import rembg
    except ImportError:
        return None, "rembg not installed (pip install -r scripts/benchmark-requirements.txt)"
    arch = "isnet" if card.get("format") == "onnx" else card.get("architecture", "")
    session_name = {"isnet": "dis_custom", "u2net": "u2net_custom", "u2netp": "u2net_custom"}.get(arch)
    if session_name is None:
        return None, f"rembg has no session for architecture {arch!r}"
    link = Path(home) / f"{card['name']}.onnx"
    link.symlink_to(Path(onnx_path).resolve())
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = rembg.new_session(session_name, model_path=str(link), sess_opts=options,
                                providers=["CPUExecutionProvider"])
    return (lambda pic: rembg.remove(pic, session=session)), session_name


def cutout_variants(model_dir, card, threads, tmp, with_rembg, notes):
    """{name: picture -> RGBA}: ours through ONNX Runtime (as served, and at rembg's input size),
    ours through torch for torch cards, and rembg on the same ONNX file."""
    from app.build.torch_cutout import cutter_from_net, load_torch_cutter
    from app.inference.cutout import Cutter
    from app.inference.onnx_runner import OnnxCutout, onnx_file

    arch = "isnet" if card.get("format") == "onnx" else card.get("architecture", "")
    same = REMBG_SIZE.get(arch)
    variants = {}
    served = Cutter.load(model_dir, threads=threads)
    variants[f"ours, ORT @{served.input_size} (served)"] = served.cutout
    if same and same != served.input_size:
        variants[f"ours, ORT @{same}"] = Cutter(OnnxCutout.load(model_dir, threads=threads, size=same), card).cutout
    if card.get("format") != "onnx":
        torch_cutter = load_torch_cutter(model_dir)
        variants[f"ours, torch @{torch_cutter.input_size}"] = torch_cutter.cutout
        if same and same != torch_cutter.input_size:
            net = torch_cutter.runner.net
            variants[f"ours, torch @{same}"] = cutter_from_net(net, dict(card, input_size=same)).cutout
    if with_rembg:
        home = Path(tmp) / "rembg-home"
        home.mkdir(exist_ok=True)
        remover, how = rembg_cutter(card, model_dir, onnx_file(model_dir, card)[0], home, threads)
        if remover:
            variants[f"rembg {how} @{same}"] = remover
        else:
            notes.append(f"{model_dir.name}: {how}")
    return variants, arch, same


def bench_cutout(threads, runs, tmp, with_rembg, only_model=None):
    import torch

    torch.set_num_threads(threads)
    rows, png_rows, notes = [], [], []
    pictures = {f"{w}x{h}": picture(w, h) for w, h in PICTURE_SIZES}
    for model_dir in list_model_dirs(resolve_path("models")):
        card = load_card(model_dir)
        if card.get("kind") != "cutout" or (only_model and model_dir.name != only_model):
            continue
        print(f"cutout: {model_dir.name} ...", flush=True)
        try:
            variants, arch, same = cutout_variants(model_dir, card, threads, tmp, with_rembg, notes)
        except ModelError as exc:
            notes.append(f"{model_dir.name}: {exc}")
            continue
        for size, pic in pictures.items():
            timed = alternate({name: (lambda fn=fn, p=pic: fn(p)) for name, fn in variants.items()}, runs)
            rembg_ms = next((v[0] for name, v in timed.items() if name.startswith("rembg")), None)
            for name, (ms, fastest, cpu_ms) in timed.items():
                rows.append({"model": model_dir.name, "architecture": arch, "picture": size, "variant": name,
                             "ms": round(ms, 1), "min_ms": round(fastest, 1), "cpu_ms": round(cpu_ms, 1),
                             "rembg_ms_over_this": round(rembg_ms / ms, 2) if rembg_ms else None})
        if not png_rows:
            for size, pic in pictures.items():
                rgba = next(iter(variants.values()))(pic)

                def level(n, rgba=rgba):
                    out = io.BytesIO()
                    rgba.save(out, format="PNG", compress_level=n)
                    return out

                timed = alternate({"png_bytes (served)": lambda r=rgba: png_bytes(r),
                                   "compress_level=6": lambda: level(6)}, runs)
                png_rows.append({"picture": size, "served_ms": round(timed["png_bytes (served)"][0], 1),
                                 "served_kb": len(png_bytes(rgba)) // 1024,
                                 "pillow_default_ms": round(timed["compress_level=6"][0], 1),
                                 "pillow_default_kb": len(level(6).getvalue()) // 1024})
    return rows, png_rows, sorted(set(notes))


def print_tables(result):
    m = result["machine"]
    print(f"\n{m['date']}: {m['cpu']}, {m['cores']} cores, {m['threads']} thread(s); load average "
          f"{m['load_average_at_start']} at start, {m['load_average_at_end']} at end; "
          f"torch {m['torch']}, onnxruntime {m['onnxruntime']}")
    print("\nIdentify, ms per face (preprocessing included), median")
    print(f"{'backbone':20s} {'weights':8s} {'batch':>5s} {'torch':>8s} {'ORT':>8s} {'speed-up':>8s} "
          f"{'torch CPU':>9s} {'ORT CPU':>8s}  export check")
    for r in result["identify"]:
        check = r["export_check"]
        print(f"{r['backbone']:20s} {r['weights'].split()[0]:8s} {r['batch']:5d} {r['torch_ms_per_face']:8.1f} "
              f"{r['onnxruntime_ms_per_face']:8.1f} {r['speedup']:7.1f}x {r['torch_cpu_ms_per_face']:9.1f} "
              f"{r['onnxruntime_cpu_ms_per_face']:8.1f}  max diff {check['max_abs_diff']:.1e}, "
              f"top-1 {check['same_top1']}/{check['count']}")
    print("\nCutout, ms per picture (picture -> RGBA, no PNG), median")
    print(f"{'model':16s} {'picture':10s} {'variant':30s} {'ms':>8s} {'CPU ms':>8s} {'rembg/this':>10s}")
    for r in result["cutout"]:
        ratio = f"{r['rembg_ms_over_this']:.2f}" if r["rembg_ms_over_this"] else "-"
        print(f"{r['model']:16s} {r['picture']:10s} {r['variant']:30s} {r['ms']:8.1f} {r['cpu_ms']:8.1f} {ratio:>10s}")
    print("\nPNG encoding of the cut-out, ms (size)")
    for r in result["png"]:
        print(f"{r['picture']:10s} served (zlib level 1) {r['served_ms']:7.1f} ms ({r['served_kb']} KB), "
              f"Pillow's default level 6 {r['pillow_default_ms']:7.1f} ms ({r['pillow_default_kb']} KB)")
    for note in result["notes"]:
        print(f"note: {note}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="compute threads (default: all cores)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--only", choices=("identify", "cutout"), default=None)
    parser.add_argument("--no-rembg", action="store_true", help="skip the rembg yardstick")
    parser.add_argument("--model", default=None, help="time only this cutout model directory")
    args = parser.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    import torch
    torch.set_num_threads(threads)
    result = {"machine": machine(threads), "identify": [], "cutout": [], "png": [], "notes": []}
    with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp, contextlib.redirect_stderr(sys.stderr):
        if args.only in (None, "identify"):
            result["identify"] = bench_identify(threads, args.runs, tmp)
        if args.only in (None, "cutout"):
            result["cutout"], result["png"], result["notes"] = bench_cutout(threads, args.runs, tmp,
                                                                            not args.no_rembg, args.model)
    result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print_tables(result)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
