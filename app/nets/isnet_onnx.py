"""Convert an IS-Net ONNX file (batch norm folded into the convolutions) to an ISNetDIS state dict.

The npm "general use" file (`@imgly/background-removal-data`, `/models/medium`) is a PyTorch
export of the official ISNetDIS in which every batch norm was folded into the convolution before
it: 119 Conv nodes, fp16 weights and biases, most named `onnx::Conv_N`. Each Conv node's name
keeps the module path (`/stage1/rebnconvin/conv_s1/Conv`), so every weight goes to the
convolution of that name; stride, dilation and padding are checked against the network too.
Every batch norm becomes an exact identity in eval mode (weight 1, bias 0, mean 0,
variance 1 - eps), so `load_state_dict(strict=True)` takes the result and the network computes
what the file computes.

Training note: in train mode a batch norm normalises by batch statistics, so a fine-tune that
starts from these weights should keep the batch norms in eval mode (or frozen) at first.
"""
import numpy as np
import torch
from torch import nn

from app.nets.isnet import ISNetDIS


class ConversionError(ValueError):
    """The ONNX file does not hold an IS-Net this converter understands."""


def _conv_attributes(node):
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return (tuple(attrs.get("strides", (1, 1))), tuple(attrs.get("dilations", (1, 1))),
            tuple(attrs.get("pads", (0, 0, 0, 0))[:2]), int(attrs.get("group", 1)))


def _module_path(node_name):
    """'/stage1/rebnconvin/conv_s1/Conv' -> 'stage1.rebnconvin.conv_s1'."""
    parts = node_name.strip("/").split("/")
    if len(parts) < 2 or parts[-1] != "Conv":
        raise ConversionError(f"Conv node {node_name!r} does not name its module")
    return ".".join(parts[:-1])


def isnet_state_dict(onnx_path, net=None):
    """A float32 state dict for ISNetDIS (strict=True) from an IS-Net ONNX file with folded batch norm."""
    import onnx
    from onnx import numpy_helper

    net = net or ISNetDIS()
    model = onnx.load(str(onnx_path))
    inits = {t.name: t for t in model.graph.initializer}
    convs = {name: m for name, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    state = {k: v.clone() for k, v in net.state_dict().items()}

    seen = set()
    for node in (n for n in model.graph.node if n.op_type == "Conv"):
        path = _module_path(node.name)
        conv = convs.get(path)
        if conv is None:
            raise ConversionError(f"Conv node {node.name!r} has no convolution {path!r} in ISNetDIS")
        if path in seen:
            raise ConversionError(f"two Conv nodes for {path!r}")
        seen.add(path)
        expected = (conv.stride, conv.dilation, conv.padding, conv.groups)
        if _conv_attributes(node) != expected:
            raise ConversionError(f"{path}: stride/dilation/padding/groups {_conv_attributes(node)} "
                                  f"!= {expected}")
        if len(node.input) != 3 or node.input[1] not in inits or node.input[2] not in inits:
            raise ConversionError(f"{path}: weight and bias must be initialisers")
        for key, name in (("weight", node.input[1]), ("bias", node.input[2])):
            value = torch.from_numpy(numpy_helper.to_array(inits[name]).astype(np.float32))
            if value.shape != state[f"{path}.{key}"].shape:
                raise ConversionError(f"{path}.{key}: shape {tuple(value.shape)} in the file, "
                                      f"{tuple(state[path + '.' + key].shape)} in ISNetDIS")
            state[f"{path}.{key}"] = value
    missing = sorted(set(convs) - seen)
    if missing:
        raise ConversionError(f"{len(missing)} convolutions have no Conv node in the file "
                              f"(first: {missing[0]}); is it an IS-Net with folded batch norm?")

    for name, module in net.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            # Identity in eval mode: (x - 0) / sqrt((1 - eps) + eps) * 1 + 0 == x.
            state[f"{name}.weight"] = torch.ones_like(state[f"{name}.weight"])
            state[f"{name}.bias"] = torch.zeros_like(state[f"{name}.bias"])
            state[f"{name}.running_mean"] = torch.zeros_like(state[f"{name}.running_mean"])
            state[f"{name}.running_var"] = torch.full_like(state[f"{name}.running_var"],
                                                           1.0 - module.eps)
            state[f"{name}.num_batches_tracked"] = torch.zeros_like(
                state[f"{name}.num_batches_tracked"])
    return state


def load_isnet(onnx_path):
    """ISNetDIS in eval mode with the weights of an IS-Net ONNX file (strict load)."""
    net = ISNetDIS()
    net.load_state_dict(isnet_state_dict(onnx_path, net), strict=True)
    return net.eval()
