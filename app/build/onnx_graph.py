"""The one way a torch network becomes an ONNX graph here, the limits every export is verified
against, and the one export record (backbones: app/build/backbone_export.py; cutouts:
app/build/cutout_export.py; IS-Nets: app/build/isnet_general.py and isnet_tuned.py)."""
import warnings
from datetime import date
from pathlib import Path

from app.storage.files import sha256_file

OPSET = 17
MAX_ABS_DIFF = 1e-3  # fp32 against fp32: rounding differences are around 1e-5, far below this
MIN_MASK_IOU = 0.99  # cutouts: the served masks of torch and ONNX Runtime


def trace(module, example, dest, input_name, output_name, dynamic_axes):
    """Write `module` (eval mode) traced on `example` to the ONNX file `dest` at OPSET."""
    import torch

    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated, but it needs no onnxscript, gives plain opset-17
        # graphs and handles free dimensions through dynamic_axes.
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(dest), dynamo=False, input_names=[input_name],
                          output_names=[output_name], opset_version=OPSET, dynamic_axes=dynamic_axes)


def export_record(path, weights_file, weights_sha256, verified, name=None, **extra):
    """The one record of an export, whatever network it holds: the file and its sha256, the
    weights it was made from (serving uses it only while they match), how it was made and how it
    was verified; `extra` adds what the kind needs (a backbone's sizes, a cutout's preprocess).
    `name`: the file's name once in place, when `path` is a scratch copy."""
    import torch

    return {"file": name or Path(path).name, "sha256": sha256_file(path), "weights_file": str(weights_file),
            "weights_sha256": weights_sha256, **extra, "opset": OPSET, "torch": torch.__version__,
            "created": date.today().isoformat(), "verified": verified}
