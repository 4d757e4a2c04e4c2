"""U^2-Net and U^2-NetP with the parameter names of the official U-2-Net release.

Qin et al., "U^2-Net: Going Deeper with Nested U-Structure for Salient Object
Detection" (2020). Names and shapes match the published `u2net.pth` and
`u2netp.pth`, so those files load with `strict=True`.
"""
import torch
import torch.nn.functional as F
from torch import nn


def _upsample_like(x, ref):
    return F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=False)


class REBNCONV(nn.Module):
    """3x3 conv (optionally dilated) + batch norm + ReLU."""

    def __init__(self, in_ch=3, out_ch=3, dirate=1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dirate, dilation=dirate)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


class _RSU(nn.Module):
    """Residual U-block of `height` levels (RSU-7 ... RSU-4): pooled encoder, dilated bottom."""

    def __init__(self, height, in_ch, mid_ch, out_ch):
        super().__init__()
        self.height = height
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        for i in range(1, height - 1):
            setattr(self, f"pool{i}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
            setattr(self, f"rebnconv{i + 1}", REBNCONV(mid_ch, mid_ch, dirate=1))
        setattr(self, f"rebnconv{height}", REBNCONV(mid_ch, mid_ch, dirate=2))
        for i in range(height - 1, 1, -1):
            setattr(self, f"rebnconv{i}d", REBNCONV(mid_ch * 2, mid_ch, dirate=1))
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x):
        hxin = self.rebnconvin(x)
        enc = [self.rebnconv1(hxin)]
        for i in range(1, self.height - 1):
            pooled = getattr(self, f"pool{i}")(enc[-1])
            enc.append(getattr(self, f"rebnconv{i + 1}")(pooled))
        hx = getattr(self, f"rebnconv{self.height}")(enc[-1])
        for i in range(self.height - 1, 0, -1):
            hx = getattr(self, f"rebnconv{i}d")(torch.cat((hx, enc[i - 1]), 1))
            if i > 1:
                hx = _upsample_like(hx, enc[i - 2])
        return hx + hxin


class RSU7(_RSU):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__(7, in_ch, mid_ch, out_ch)


class RSU6(_RSU):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__(6, in_ch, mid_ch, out_ch)


class RSU5(_RSU):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__(5, in_ch, mid_ch, out_ch)


class RSU4(_RSU):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__(4, in_ch, mid_ch, out_ch)


class RSU4F(nn.Module):
    """RSU-4F: no pooling, dilations 1-2-4-8 keep full resolution."""

    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x):
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        return hx1d + hxin


class _U2NetBase(nn.Module):
    """Six-stage encoder, five-stage decoder, six side outputs fused by a 1x1 conv."""

    def __init__(self, in_ch, out_ch, enc, dec, side_ch):
        super().__init__()
        (self.stage1, self.stage2, self.stage3,
         self.stage4, self.stage5, self.stage6) = enc
        for i in range(1, 5):
            setattr(self, f"pool{i}{i + 1}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
        self.pool56 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.stage5d, self.stage4d, self.stage3d, self.stage2d, self.stage1d = dec
        for i, ch in enumerate(side_ch, start=1):
            setattr(self, f"side{i}", nn.Conv2d(ch, out_ch, 3, padding=1))
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def forward(self, x):
        """Returns (d0, d1, ..., d6), each N x out_ch x H x W after sigmoid; d0 is the fused map."""
        hx1 = self.stage1(x)
        hx2 = self.stage2(self.pool12(hx1))
        hx3 = self.stage3(self.pool23(hx2))
        hx4 = self.stage4(self.pool34(hx3))
        hx5 = self.stage5(self.pool45(hx4))
        hx6 = self.stage6(self.pool56(hx5))

        hx5d = self.stage5d(torch.cat((_upsample_like(hx6, hx5), hx5), 1))
        hx4d = self.stage4d(torch.cat((_upsample_like(hx5d, hx4), hx4), 1))
        hx3d = self.stage3d(torch.cat((_upsample_like(hx4d, hx3), hx3), 1))
        hx2d = self.stage2d(torch.cat((_upsample_like(hx3d, hx2), hx2), 1))
        hx1d = self.stage1d(torch.cat((_upsample_like(hx2d, hx1), hx1), 1))

        sides = [self.side1(hx1d)]
        for i, hx in enumerate((hx2d, hx3d, hx4d, hx5d, hx6), start=2):
            sides.append(_upsample_like(getattr(self, f"side{i}")(hx), sides[0]))
        d0 = self.outconv(torch.cat(sides, 1))
        return tuple(torch.sigmoid(d) for d in (d0, *sides))


class U2NET(_U2NetBase):
    """Full U^2-Net, 44.0 M parameters (official `u2net.pth`)."""

    def __init__(self, in_ch=3, out_ch=1):
        enc = (RSU7(in_ch, 32, 64), RSU6(64, 32, 128), RSU5(128, 64, 256),
               RSU4(256, 128, 512), RSU4F(512, 256, 512), RSU4F(512, 256, 512))
        dec = (RSU4F(1024, 256, 512), RSU4(1024, 128, 256), RSU5(512, 64, 128),
               RSU6(256, 32, 64), RSU7(128, 16, 64))
        super().__init__(in_ch, out_ch, enc, dec, (64, 64, 128, 256, 512, 512))


class U2NETP(_U2NetBase):
    """Small U^2-Net, 1.13 M parameters (official `u2netp.pth`)."""

    def __init__(self, in_ch=3, out_ch=1):
        enc = (RSU7(in_ch, 16, 64), RSU6(64, 16, 64), RSU5(64, 16, 64),
               RSU4(64, 16, 64), RSU4F(64, 16, 64), RSU4F(64, 16, 64))
        dec = (RSU4F(128, 16, 64), RSU4(128, 16, 64), RSU5(128, 16, 64),
               RSU6(128, 16, 64), RSU7(128, 16, 64))
        super().__init__(in_ch, out_ch, enc, dec, (64,) * 6)
