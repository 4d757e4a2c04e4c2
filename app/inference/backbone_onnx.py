"""Frozen backbones served by ONNX Runtime: export (verified against torch), cache, session.

    python -m app.inference.backbone_onnx [BACKBONE ...] [--force]

Exports live in ONNX_DIR (default .cache/onnx/, git-ignored) as `<backbone>-<sha16>.onnx` beside
a record `<backbone>-<sha16>.json`, where sha16 starts the sha256 of the weights file they were
made from. The record holds the full weights sha256, the export's own sha256 and EXPORT_VERSION:
serving uses an export only when all three match, and otherwise refuses with the command that
rebuilds it (scripts/setup.sh runs it; training and evaluation commands build it themselves).
Serving never exports: that needs the torch module and takes seconds to minutes.

An export is the backbone's `forward_features` (N x 3 x S x S normalised -> N x D), batch
dimension free, fp32. It is kept only if ONNX Runtime and torch agree on the verification
faces: max abs difference of the features at most MAX_ABS_DIFF, and the same ImageNet top-1
(the backbone's own classifier on both feature sets) for every face.
"""
import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from app.config import DEFAULTS, resolve_path
from app.inference.onnx_runner import session
from app.inference.preprocess import face_arrays
from app.storage.files import atomic_path, sha256_file, write_json
from app.storage.model_dirs import ModelError

DEFAULT_DIR = resolve_path(DEFAULTS["ONNX_DIR"])
# Bump when the network code or the export recipe changes: older exports then count as stale.
EXPORT_VERSION = 1
OPSET = 17
MAX_ABS_DIFF = 1e-3  # fp32 against fp32: rounding differences are around 1e-5
INPUT, OUTPUT = "input", "features"


def default_dir():
    """Where exports live: the running app's ONNX_DIR, else FLASK_ONNX_DIR, else .cache/onnx."""
    try:
        from flask import current_app
        return resolve_path(current_app.config["ONNX_DIR"])
    except (RuntimeError, KeyError):  # no app (setup, scripts) or an app without the setting
        return resolve_path(os.environ.get("FLASK_ONNX_DIR") or DEFAULTS["ONNX_DIR"])


def rebuild_command(name):
    return f"python -m app.inference.backbone_onnx {name}"


def export_paths(onnx_dir, name, weights_sha256):
    """(ONNX file, record) paths of backbone `name` exported from weights with this sha256."""
    stem = f"{name}-{weights_sha256[:16]}"
    onnx_dir = Path(onnx_dir)
    return onnx_dir / f"{stem}.onnx", onnx_dir / f"{stem}.json"


_digests = {}


def weights_file(name, weights_path=None):
    """(path, sha256) of the weights backbone `name` loads; ModelError if they are not installed."""
    from app.inference.backbones import SPECS

    if name not in SPECS:
        raise ModelError(f"unknown backbone {name!r}; choose one of {', '.join(sorted(SPECS))}")
    spec = SPECS[name]
    path = Path(weights_path) if weights_path else spec.default_weights()
    if not path.is_file():
        raise ModelError(f"{name} weights not found at {path}; run `{spec.fetch_hint}`")
    # Hashing Inception's 100 MB takes a while: remember it while the file stays the same.
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return path, _digests[key]


def check_export(onnx_dir, name, weights_sha256):
    """(ONNX path, record) of a usable export; ModelError saying why not and how to rebuild."""
    path, record_path = export_paths(onnx_dir, name, weights_sha256)
    rebuild = f"build it with `{rebuild_command(name)}` (scripts/setup.sh does)"
    if not record_path.is_file():
        others = sorted(p.name for p in Path(onnx_dir).glob(f"{name}-*.json")) if Path(onnx_dir).is_dir() else []
        also = f" (only exports of other weights are there: {', '.join(others)})" if others else ""
        raise ModelError(f"no ONNX export of {name} for its weights (sha256 {weights_sha256[:16]}...) "
                         f"in {onnx_dir}{also}; {rebuild}")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        fields = (record["weights_sha256"], record["sha256"], record["export_version"],
                  int(record["input_size"]), int(record["feature_dim"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{record_path} is unreadable ({exc!r}); {rebuild}") from None
    weights_sha, onnx_sha, version = fields[:3]
    if weights_sha != weights_sha256:
        raise ModelError(f"{record_path} was made from other weights (sha256 {str(weights_sha)[:16]}...): "
                         f"stale; {rebuild}")
    if version != EXPORT_VERSION:
        raise ModelError(f"{record_path} was made by export version {version}, this code is version "
                         f"{EXPORT_VERSION}: stale; {rebuild}")
    if not path.is_file() or sha256_file(path) != onnx_sha:
        raise ModelError(f"{path} is missing or does not match its record (damaged?); {rebuild}")
    return path, record


@dataclass
class OnnxBackbone:
    """A backbone in an ONNX Runtime session, with the preprocessing constants of its weights."""

    name: str
    input_size: int
    mean: tuple
    std: tuple
    feature_dim: int
    weights_sha256: str
    session: object
    path: Path

    def features(self, batch):
        """N x 3 x S x S float32 array (normalised) -> N x feature_dim float32 array."""
        if batch.shape[0] == 0:
            return np.empty((0, self.feature_dim), np.float32)
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch, np.float32)})[0]

    def face_features(self, images):
        """Face crops (PIL) -> N x feature_dim features, preprocessed as the weights expect."""
        return self.features(face_arrays(images, self.input_size, self.mean, self.std))


_sessions = {}
_sessions_pid = os.getpid()
_sessions_lock = threading.Lock()


def load_onnx_backbone(name, onnx_dir=None, threads=1, weights_path=None, build=False):
    """The ONNX Runtime backbone `name`, one per (export, threads) in this process.

    build=False (serving): a missing or stale export is a ModelError naming the rebuild command.
    build=True (model-build time): it is exported and verified first.
    """
    from app.inference.backbones import SPECS

    onnx_dir = Path(onnx_dir) if onnx_dir else default_dir()
    path, digest = weights_file(name, weights_path)
    if build:
        ensure_export(name, onnx_dir, path)
    onnx_path, record = check_export(onnx_dir, name, digest)
    key = (str(onnx_path.resolve()), record["sha256"], int(threads))
    global _sessions_pid
    with _sessions_lock:
        if _sessions_pid != os.getpid():  # forked: sessions are not shared across processes
            _sessions.clear()
            _sessions_pid = os.getpid()
        if key not in _sessions:
            spec = SPECS[name]
            _sessions[key] = OnnxBackbone(name, spec.input_size, tuple(spec.mean), tuple(spec.std),
                                          int(record["feature_dim"]), digest,
                                          session(onnx_path, threads), onnx_path)
        return _sessions[key]


# --- export (torch) -------------------------------------------------------------------------

def verification_faces(count=12, size=160, seed=0):
    """Deterministic face-sized pictures for checking an export: smooth colour fields with
    blobs and edges (real photos are not installed at setup; the tests use skimage's and the
    demo cast's)."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        low = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        picture = Image.fromarray(low).resize((size, size), Image.BICUBIC)
        draw = ImageDraw.Draw(picture)
        for _ in range(int(rng.integers(2, 6))):
            x, y = (int(v) for v in rng.integers(0, size, 2))
            r = int(rng.integers(8, size // 3))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x - r, y - r, x + r, y + r), fill=colour)
        out.append(picture.filter(ImageFilter.GaussianBlur(1)))
    return out


def _fuse_pads(model):
    """Fold zero Pad nodes with constant pads into the Conv that reads them (in place); returns
    how many. TensorFlow-SAME padding exports as Pad + Conv; ONNX Runtime does not fuse them and
    would convert the layout around every Pad."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    readers = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    fused = []
    for node in graph.node:
        if node.op_type != "Pad" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        value = node.input[2] if len(node.input) > 2 else ""
        if mode != b"constant" or (value and (value not in constants or constants[value].any())):
            continue
        pads = [int(v) for v in constants[node.input[1]]]
        users = readers[node.output[0]]
        if (len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0
                or len(users) != 1 or users[0].op_type != "Conv"
                or any(o.name == node.output[0] for o in graph.output)):
            continue
        conv = users[0]
        old = next((a for a in conv.attribute if a.name == "pads"), None)
        if any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for a in conv.attribute):
            continue
        base = list(old.ints) if old is not None else [0, 0, 0, 0]
        if old is not None:
            conv.attribute.remove(old)
        # Pad: [n, c, h, w] begins then ends; Conv: [h, w] begins then ends.
        conv.attribute.append(helper.make_attribute(
            "pads", [base[0] + pads[2], base[1] + pads[3], base[2] + pads[6], base[3] + pads[7]]))
        conv.input[0] = node.input[0]
        fused.append(node)
    for node in fused:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return len(fused)


def export_graph(module, input_size, dest):
    """Write module.forward_features as an ONNX graph with a free batch dimension to `dest`:
    traced, constant-folded by ONNX Runtime's basic (hardware-independent) level, pads fused."""
    import onnx
    import onnxruntime as ort
    import torch

    class Features(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.forward_features(x)

    if hasattr(module, "fixed_size"):  # constant paddings instead of shape arithmetic
        module = module.fixed_size(input_size)
    with tempfile.TemporaryDirectory(dir=Path(dest).parent) as tmp:
        traced, folded = Path(tmp) / "traced.onnx", Path(tmp) / "folded.onnx"
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated but needs no onnxscript and gives plain
            # opset-17 graphs.
            warnings.simplefilter("ignore")
            torch.onnx.export(Features(module).eval(), (torch.zeros(1, 3, input_size, input_size),),
                              str(traced), dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                              opset_version=OPSET,
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        ort.InferenceSession(str(traced), options, providers=["CPUExecutionProvider"])
        model = onnx.load(str(folded))
        _fuse_pads(model)
        onnx.checker.check_model(model)
        with atomic_path(dest) as part:
            onnx.save(model, str(part))


def verify(backbone, onnx_backbone, faces):
    """(max abs feature difference, faces with the same ImageNet top-1, faces) torch vs ORT."""
    import torch

    batch = face_arrays(faces, backbone.input_size, backbone.mean, backbone.std)
    with torch.inference_mode():
        expected = backbone.module.forward_features(torch.from_numpy(batch))
        got = torch.from_numpy(onnx_backbone.features(batch))
        same = int((backbone.module.forward_head(expected).argmax(1)
                    == backbone.module.forward_head(got).argmax(1)).sum())
    return float((expected - got).abs().max()), same, len(faces)


def build_export(name, onnx_dir=None, weights_path=None, faces=None, threads=1):
    """Export backbone `name`, verify it against torch and cache it; returns the record.

    ModelError, and nothing left in onnx_dir, if torch and ONNX Runtime disagree.
    """
    import torch

    from app.inference.backbones import load_backbone

    onnx_dir = Path(onnx_dir) if onnx_dir else default_dir()
    onnx_dir.mkdir(parents=True, exist_ok=True)
    backbone = load_backbone(name, weights_path)
    path, record_path = export_paths(onnx_dir, name, backbone.weights_sha256)
    described = "caller's faces" if faces is not None else "12 generated pictures (colour fields, shapes)"
    faces = verification_faces() if faces is None else faces
    with tempfile.TemporaryDirectory(dir=onnx_dir, prefix=".tmp-export-") as tmp:
        candidate = Path(tmp) / path.name
        export_graph(backbone.module, backbone.input_size, candidate)
        runner = OnnxBackbone(name, backbone.input_size, backbone.mean, backbone.std, backbone.feature_dim,
                              backbone.weights_sha256, session(candidate, threads), candidate)
        diff, same, total = verify(backbone, runner, faces)
        if diff > MAX_ABS_DIFF or same != total:
            raise ModelError(f"ONNX export of {name} disagrees with torch: max abs difference {diff:.2e} "
                             f"(at most {MAX_ABS_DIFF}), same ImageNet top-1 for {same} of {total} "
                             f"faces; not kept")
        del runner
        candidate.replace(path)  # same folder: atomic; the record below makes it count
    record = {"backbone": name, "file": path.name, "sha256": sha256_file(path),
              "weights_file": str(backbone.weights_path.name), "weights_sha256": backbone.weights_sha256,
              "export_version": EXPORT_VERSION, "opset": OPSET, "torch": torch.__version__,
              "input_size": backbone.input_size, "feature_dim": backbone.feature_dim,
              "input": INPUT, "output": OUTPUT, "created": date.today().isoformat(),
              "verified": {"faces": described, "count": total, "max_abs_diff": diff,
                           "same_top1": same, "limits": {"max_abs_diff": MAX_ABS_DIFF}}}
    write_json(record_path, record)
    return record


def ensure_export(name, onnx_dir=None, weights_path=None, force=False):
    """(record, built): the cached export of `name` if usable, else a fresh one (model-build time)."""
    onnx_dir = Path(onnx_dir) if onnx_dir else default_dir()
    if not force:
        _, digest = weights_file(name, weights_path)
        try:
            return check_export(onnx_dir, name, digest)[1], False
        except ModelError:
            pass  # missing, stale or damaged: rebuilt below
    return build_export(name, onnx_dir, weights_path), True


def main(argv=None):
    from app.inference.backbones import SPECS

    parser = argparse.ArgumentParser(description="Export backbones to ONNX (verified against torch).")
    parser.add_argument("names", nargs="*", help=f"backbones (default: every installed one of "
                                                 f"{', '.join(sorted(SPECS))})")
    parser.add_argument("--onnx-dir", default=None, help="where exports go (default: FLASK_ONNX_DIR or .cache/onnx)")
    parser.add_argument("--force", action="store_true", help="rebuild even when a fresh export exists")
    args = parser.parse_args(argv)
    onnx_dir = resolve_path(args.onnx_dir) if args.onnx_dir else default_dir()
    names = args.names or sorted(SPECS)
    status = 0
    for name in names:
        try:
            weights_file(name)
        except ModelError as exc:
            if args.names:
                print(f"{name}: {exc}", file=sys.stderr)
                status = 1
            else:
                print(f"{name}: weights not installed, skipped")
            continue
        try:
            record, built = ensure_export(name, onnx_dir, force=args.force)
        except ModelError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
            continue
        verified = record["verified"]
        print(f"{name}: {'exported' if built else 'up to date'} {onnx_dir / record['file']} "
              f"(max abs difference {verified['max_abs_diff']:.1e}, same top-1 "
              f"{verified['same_top1']}/{verified['count']})")
    return status


if __name__ == "__main__":
    sys.exit(main())
