"""The one way a torch network becomes an ONNX graph here, and the limits every export is
verified against (backbones: app/build/backbone_export.py; cutouts: app/build/cutout_export.py)."""
import warnings

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
