"""Edge colour decontamination: a cut-out's soft edge pixels without the old background's colour.

An edge pixel of the picture is a mix I = a F + (1 - a) B of the figure's colour F and the
background's B. Keeping I with alpha a shows a halo of B (orange on a warm background) over any new
background. B is estimated from the nearby pixels that are background (a blur weighted by 1 - a),
and F = (I - (1 - a) B) / a is solved where 0 < a < 1; opaque and transparent pixels are unchanged.
"""
import cv2
import numpy as np

# Neighbourhood over which the background colour is averaged: a share of the picture's longer side,
# and never less than MIN_SIDE pixels, so that it reaches past a soft edge into pure background.
RADIUS_SHARE = 0.02
MIN_SIDE = 15
MIN_ALPHA = 0.05  # below this F is too unstable to solve; the pixel is nearly transparent anyway


def decontaminate(rgba):
    """RGBA uint8 (H x W x 4) -> the same with the colours of partly transparent pixels freed of the background."""
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    a = rgba[..., 3].astype(np.float32) / 255.0
    edge = (a > MIN_ALPHA) & (a < 1.0)
    if not edge.any():
        return rgba
    side = max(MIN_SIDE, int(max(a.shape) * RADIUS_SHARE) | 1)
    weight = (1.0 - a) ** 4  # pure background counts, half-covered pixels hardly
    # Normalised convolution: the mean colour of the background pixels around each pixel. It is
    # a wide, smooth average, so a big picture computes it on a copy a quarter of the size.
    step = 2 if side >= 2 * MIN_SIDE else 1
    if step > 1:
        h, w = a.shape
        size = ((w + 1) // 2, (h + 1) // 2)
        small_rgb = cv2.resize(rgb * weight[..., None], size, interpolation=cv2.INTER_AREA)
        small_w = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
    else:
        small_rgb, small_w = rgb * weight[..., None], weight
    k = max(3, side // step | 1)
    background = cv2.blur(small_rgb, (k, k)) / np.maximum(cv2.blur(small_w, (k, k)), 1e-4)[..., None]
    # Solved only where it changes anything: the edge band is a small share of a big picture.
    rows, cols = np.nonzero(edge)
    ae = a[rows, cols][:, None]
    fg = (rgb[rows, cols] - (1.0 - ae) * background[rows // step, cols // step]) / np.maximum(ae, MIN_ALPHA)
    out = rgba.copy()
    out[rows, cols, :3] = np.clip(np.rint(fg * 255.0), 0, 255).astype(np.uint8)
    return out


def edge_colour_error(rgba, true_rgb):
    """Colour error (0-255) of the partly transparent pixels against the true figure colours, each
    weighted by its alpha (how much of it shows over a new background)."""
    a = rgba[..., 3].astype(np.float32) / 255.0
    edge = (a > 0) & (a < 1)
    if not edge.any():
        return 0.0
    diff = np.abs(rgba[..., :3].astype(np.float32) - true_rgb.astype(np.float32)).mean(axis=2)
    return float((diff[edge] * a[edge]).sum() / a[edge].sum())
