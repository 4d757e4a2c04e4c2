"""Export frozen backbones to ONNX, verified against torch (model-build time; needs torch).

    python -m app.build.backbone_export [BACKBONE ...] [--force]

The export is the backbone's `forward_features` (N x 3 x S x S normalised -> N x D), batch
dimension free, fp32, kept only if ONNX Runtime and torch agree on the verification faces (app/
build/verify.py's limits). app/inference/backbone_onnx.py serves it and checks its record.
"""
import argparse
import collections
import sys
import tempfile
from pathlib import Path

import numpy as np

from app import nets
from app.build import onnx_graph
from app.build.backbones import load_backbone
from app.build.onnx_graph import MAX_ABS_DIFF
from app.config import resolve_path
from app.inference.backbone_onnx import (
    EXPORT_VERSION,
    INPUT,
    OUTPUT,
    OnnxBackbone,
    check_export,
    default_dir,
    export_paths,
    weights_file,
)
from app.inference.onnx_runner import session
from app.inference.preprocess import face_arrays
from app.storage.files import atomic_path, write_json
from app.storage.model_dirs import ModelError


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
        onnx_graph.trace(Features(module), torch.zeros(1, 3, input_size, input_size), traced, INPUT, OUTPUT,
                         {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
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
    record = onnx_graph.export_record(
        path, backbone.weights_path.name, backbone.weights_sha256,
        {"faces": described, "count": total, "max_abs_diff": diff, "same_top1": same,
         "limits": {"max_abs_diff": MAX_ABS_DIFF}},
        backbone=name, export_version=EXPORT_VERSION, input_size=backbone.input_size,
        feature_dim=backbone.feature_dim, input=INPUT, output=OUTPUT)
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
    SPECS = nets.names("backbone")
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
