"""IS-Net (ISNetDIS) with the parameter names of the official DIS release.

Qin et al., "Highly Accurate Dichotomous Image Segmentation" (ECCV 2022). The network is
U^2-Net's successor: the same RSU blocks, a stride-2 `conv_in` in front, no fused `outconv`;
the first side output d1 is the main map. Names and shapes match the official `ISNetDIS`
(`conv_in.*`, `stage1..6.*`, `stage5d..1d.*`, `side1..6.*`), so its checkpoints load with
`strict=True`; the npm ONNX file of the "general use" weights converts onto it too
(app/nets/isnet_onnx.py).
"""
import torch
from torch import nn

from app.nets.u2net import RSU4, RSU4F, RSU5, RSU6, RSU7, _upsample_like


class ISNetDIS(nn.Module):
    """44.0 M parameters; input N x 3 x H x W, 1024 x 1024 for the published weights."""

    def __init__(self, in_ch=3, out_ch=1):
        super().__init__()
        self.conv_in = nn.Conv2d(in_ch, 64, 3, stride=2, padding=1)
        # pool_in and the pool12..56 layers hold no parameters; kept for the official structure.
        self.pool_in = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # unused in the official forward too

        self.stage1 = RSU7(64, 32, 64)
        self.stage2 = RSU6(64, 32, 128)
        self.stage3 = RSU5(128, 64, 256)
        self.stage4 = RSU4(256, 128, 512)
        self.stage5 = RSU4F(512, 256, 512)
        self.stage6 = RSU4F(512, 256, 512)
        for i in range(1, 6):
            setattr(self, f"pool{i}{i + 1}", nn.MaxPool2d(2, stride=2, ceil_mode=True))

        self.stage5d = RSU4F(1024, 256, 512)
        self.stage4d = RSU4(1024, 128, 256)
        self.stage3d = RSU5(512, 64, 128)
        self.stage2d = RSU6(256, 32, 64)
        self.stage1d = RSU7(128, 16, 64)

        for i, ch in enumerate((64, 64, 128, 256, 512, 512), start=1):
            setattr(self, f"side{i}", nn.Conv2d(ch, out_ch, 3, padding=1))

    def forward(self, x):
        """Returns (d1, ..., d6), each N x out_ch x H x W after sigmoid; d1 is the main map."""
        hxin = self.conv_in(x)                    # N x 64 x H/2 x W/2
        hx1 = self.stage1(hxin)
        hx2 = self.stage2(self.pool12(hx1))       # N x 128 x H/4
        hx3 = self.stage3(self.pool23(hx2))       # N x 256 x H/8
        hx4 = self.stage4(self.pool34(hx3))       # N x 512 x H/16
        hx5 = self.stage5(self.pool45(hx4))       # N x 512 x H/32
        hx6 = self.stage6(self.pool56(hx5))       # N x 512 x H/64

        hx5d = self.stage5d(torch.cat((_upsample_like(hx6, hx5), hx5), 1))
        hx4d = self.stage4d(torch.cat((_upsample_like(hx5d, hx4), hx4), 1))
        hx3d = self.stage3d(torch.cat((_upsample_like(hx4d, hx3), hx3), 1))
        hx2d = self.stage2d(torch.cat((_upsample_like(hx3d, hx2), hx2), 1))
        hx1d = self.stage1d(torch.cat((_upsample_like(hx2d, hx1), hx1), 1))

        sides = (hx1d, hx2d, hx3d, hx4d, hx5d, hx6)
        return tuple(torch.sigmoid(_upsample_like(getattr(self, f"side{i}")(hx), x))
                     for i, hx in enumerate(sides, start=1))
