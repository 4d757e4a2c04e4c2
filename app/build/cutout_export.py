"""Export a torch cutout model directory to ONNX, verified against torch, cached beside its weights.

    python -m app.build.cutout_export models/demo-cutout [--force]

writes models/demo-cutout/model.onnx and onnx.json (both git-ignored). The record names the
weights' sha256, so app/inference/onnx_runner.py refuses an export that no longer matches them.
The export has dynamic height and width (the card's size is only the default), and is kept only
if ONNX Runtime and torch agree on verification pictures: max abs difference of the map at most
MAX_ABS_DIFF and mask IoU at least MIN_IOU; otherwise nothing is written.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from app import nets
from app.build import onnx_graph
from app.build.onnx_graph import MAX_ABS_DIFF
from app.build.onnx_graph import MIN_MASK_IOU as MIN_IOU
from app.build.torch_weights import load_state_dict
from app.config import ROOT
from app.inference.onnx_runner import EXPORT_NAME, EXPORT_RECORD, OnnxCutout, onnx_file
from app.storage.files import atomic_path, write_json
from app.storage.model_dirs import ModelError, load_card

U2NET_ARCHITECTURES = ("u2net", "u2netp")

# Official U-2-Net preprocessing: divide by the picture's maximum, then ImageNet mean/std.
U2NET_PREPROCESS = {"divide": "max", "mean": list(nets.IMAGENET_MEAN), "std": list(nets.IMAGENET_STD),
                    "output_normalise": "minmax"}
# IS-Net, as the npm package's own code feeds it; the main map min-max normalised (official DIS).
ISNET_PREPROCESS = {"divide": 1.0, "mean": [128.0] * 3, "std": [256.0] * 3, "output_normalise": "minmax"}


def preprocess_of(card):
    """The preprocess spec for a torch cutout card: its own `preprocess`, else its architecture's
    official one (U-2-Net: divide by the maximum, ImageNet mean/std; IS-Net: (x - 128) / 256)."""
    arch = card.get("architecture", "u2netp")
    if "preprocess" in card:
        spec = dict(card["preprocess"])
    elif arch in U2NET_ARCHITECTURES:
        spec = dict(U2NET_PREPROCESS, mean=list(card.get("mean", U2NET_PREPROCESS["mean"])),
                    std=list(card.get("std", U2NET_PREPROCESS["std"])))
    elif arch == "isnet":
        spec = dict(ISNET_PREPROCESS)
    else:
        raise ModelError(f"card of {card.get('name')!r} has no preprocess for architecture {arch!r}")
    spec.setdefault("size", int(card.get("input_size", 320)))
    spec.update(input="input", output="output")
    return spec


class MainMap(torch.nn.Module):
    """The first output of a cutout network (U-2-Net's fused d0, IS-Net's d1): N x 1 x H x W."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[0]


def verification_pictures():
    """(pictures, description): demo-cast sprites over a backdrop when .cache/demo_cast is there,
    else drawn shapes on a gradient; real art when available, always some picture."""
    cast = ROOT / ".cache" / "demo_cast"
    sprites = sorted((cast / "sprites").glob("*.png"))[:2]
    backgrounds = sorted((cast / "backgrounds").glob("*.jpg"))[:1]
    if sprites and backgrounds:
        out = []
        for sprite_path in sprites:
            back = Image.open(backgrounds[0]).convert("RGB").resize((640, 480))
            sprite = Image.open(sprite_path).convert("RGBA")
            sprite.thumbnail((440, 440))
            back.paste(sprite, ((640 - sprite.width) // 2, 480 - sprite.height), sprite)
            out.append(np.asarray(back))
        return out, f"demo-cast sprites {', '.join(p.stem for p in sprites)} over {backgrounds[0].stem}"
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([x * 255 // 640, y * 255 // 480, np.full_like(x, 96)], -1).astype(np.uint8)
    picture = Image.fromarray(base)
    draw = ImageDraw.Draw(picture)
    draw.ellipse((200, 80, 440, 460), fill=(240, 200, 170))
    draw.rectangle((270, 300, 370, 480), fill=(40, 60, 150))
    return [np.asarray(picture.filter(ImageFilter.GaussianBlur(1)))], "drawn shapes on a gradient"


def _mask_iou(a, b):
    union = np.logical_or(a >= 0.5, b >= 0.5).sum()
    return 1.0 if union == 0 else float(np.logical_and(a >= 0.5, b >= 0.5).sum() / union)


def verify(net, runner, pictures):
    """(max abs difference of the raw maps, lowest mask IoU of the served maps) of torch vs ORT
    on the same input tensors."""
    worst_diff, worst_iou = 0.0, 1.0
    for rgb in pictures:
        x = runner.tensor(rgb)
        with torch.inference_mode():
            expected = net(torch.from_numpy(x)).numpy()[0, 0]
        got = runner.run(x)
        worst_diff = max(worst_diff, float(np.abs(got - expected).max()))
        h, w = rgb.shape[:2]
        worst_iou = min(worst_iou, _mask_iou(runner.finish(got, h, w), runner.finish(expected, h, w)))
    return worst_diff, worst_iou


def export_net(net, spec, dest, pictures, threads=1):
    """Export a cutout network's main map to `dest` (dynamic height and width), verified against
    torch on `pictures`; returns (max abs difference, lowest mask IoU). ModelError, and `dest`
    untouched, if they disagree."""
    dest = Path(dest)
    main = MainMap(net).eval()  # eval on the wrapper: export restores the wrapper's mode to all
    with atomic_path(dest) as tmp:
        size = int(spec["size"])
        onnx_graph.trace(main, torch.zeros(1, 3, size, size), tmp, "input", "output",
                         {"input": {2: "height", 3: "width"}, "output": {2: "height", 3: "width"}})
        runner = OnnxCutout(tmp, spec, threads=threads, name=dest.parent.name)
        diff, iou = verify(main, runner, pictures)
        if diff > MAX_ABS_DIFF or iou < MIN_IOU:
            raise ModelError(f"ONNX export for {dest.parent} disagrees with torch: max abs difference "
                             f"{diff:.2e} (at most {MAX_ABS_DIFF}), mask IoU {iou:.4f} "
                             f"(at least {MIN_IOU}); not kept")
    return diff, iou


def export_cutout(model_dir, pictures=None, threads=1):
    """Export, verify and cache the ONNX file of a torch cutout model directory; returns the record.

    Raises ModelError (nothing written) if torch and ONNX Runtime disagree.
    """
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    if card.get("format") == "onnx":
        raise ModelError(f"{model_dir} is already an ONNX model; nothing to export")
    arch = card.get("architecture")
    if card.get("kind") != "cutout" or arch not in nets.names("cutout"):
        raise ModelError(f"{model_dir} is not a cutout model of a known architecture ({arch!r})")
    spec = preprocess_of(card)
    net = nets.build(arch, "cutout")
    net.load_state_dict(load_state_dict(model_dir, card), strict=True)
    if pictures is None:
        pictures, described = verification_pictures()
    else:
        described = f"{len(pictures)} pictures given by the caller"
    diff, iou = export_net(net, spec, model_dir / EXPORT_NAME, pictures, threads)
    record = onnx_graph.export_record(
        model_dir / EXPORT_NAME, card["weights"], card["sha256"],
        {"pictures": described, "max_abs_diff": diff, "min_mask_iou": iou,
         "limits": {"max_abs_diff": MAX_ABS_DIFF, "min_mask_iou": MIN_IOU}},
        architecture=arch, preprocess=spec)
    write_json(model_dir / EXPORT_RECORD, record)
    return record


def ensure_export(model_dir, force=False, threads=1):
    """(record or None, built): export unless a fresh one is cached; ONNX cards need none."""
    model_dir = Path(model_dir)
    card = load_card(model_dir)
    if card.get("format") == "onnx":
        return None, False
    if not force:
        try:
            onnx_file(model_dir, card)
            return json.loads((model_dir / EXPORT_RECORD).read_text(encoding="utf-8")), False
        except ModelError:
            pass  # missing or stale: rebuilt below
    return export_cutout(model_dir, threads=threads), True


def main(argv=None):
    """Export each MODEL_DIR given (skipping fresh exports); exit status 1 on the first failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", nargs="+", type=Path)
    parser.add_argument("--force", action="store_true", help="re-export even when fresh")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for model_dir in args.model_dirs:
        try:
            record, built = ensure_export(model_dir, args.force, args.threads)
        except ModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if record is None:
            print(f"{model_dir}: an ONNX model already; nothing to export")
        else:
            v = record["verified"]
            state = "exported" if built else "export present and fresh"
            print(f"{model_dir}: {state} ({record['file']}; against torch: max abs difference "
                  f"{v['max_abs_diff']:.1e}, mask IoU {v['min_mask_iou']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
