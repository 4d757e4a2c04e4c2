"""Animated cutouts: every frame through the serving Cutter, stable in time, and the sticker out.

Stability: a network's map of a still part of the picture still wavers from frame to frame (the
rest of the picture, GIF dithering and the resize to the serving size all change its input), and
a wavering alpha is the flicker people complain of. So each frame's pixels are compared with the
previous frame's; where they have not changed (a small blur and threshold absorb dithering),
grown by a margin so that edges near what moved are computed afresh, the previous frame's map is
kept. A frame that has not changed at all is not run through the network. The network's map is
otherwise used as it is, so a frame's cutout is the single-picture cutout wherever it moved.

Out: animated WebP (full alpha, the default), APNG, GIF (1-bit alpha: edges are laid over a matte
colour first, then a pixel is transparent below half alpha) or a ZIP of PNG frames with their
timing. Frame delays and the loop count are kept. (WebP and GIF encoders merge a frame identical to
the one before into a longer delay: the timing is kept, the frame count then drops.)
"""
import io
import json
import zipfile

import cv2
import numpy as np
from PIL import Image

from app.inference import imaging
from app.inference.cutout import postprocess
from app.inference.decontaminate import decontaminate

FORMATS = {"webp": ("image/webp", "webp"), "apng": ("image/apng", "png"), "gif": ("image/gif", "gif"),
           "zip": ("application/zip", "zip")}
DEFAULT_MATTE = (255, 255, 255)
# A pixel counts as unchanged when its blurred colour moved by less than this (0-255, max over
# channels): above GIF dithering and WebP/MP4 noise, below any real motion's edge.
STILL_THRESHOLD = 12
# Changed regions grow by this share of the frame's longer side before the network's new map is
# taken there: the network sees context, so pixels next to a moving part may change too.
STILL_MARGIN = 0.03


def change_mask(previous, current):
    """H x W bool: where `current` (RGB uint8) differs from `previous`, grown by the margin."""
    a = cv2.GaussianBlur(previous, (5, 5), 0).astype(np.int16)
    b = cv2.GaussianBlur(current, (5, 5), 0).astype(np.int16)
    changed = (np.abs(a - b).max(axis=2) > STILL_THRESHOLD).astype(np.uint8)
    if not changed.any():
        return changed.astype(bool)
    grow = max(1, int(round(STILL_MARGIN * max(changed.shape))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return cv2.dilate(changed, kernel).astype(bool)


class StickerCutter:
    """Frame after frame through `cutter` (app/inference/cutout.Cutter), keeping still parts' maps.

    stable=False cuts every frame on its own (the comparison the bench makes)."""

    def __init__(self, cutter, stable=True, faces=(), **options):
        self.cutter = cutter
        self.stable = stable
        self.faces = list(faces)
        self.options = options
        self.previous = None  # (rgb, probability map) of the last frame
        self.forwards = 0  # frames run through the network
        self.reused = 0  # share of pixels whose map was kept, summed over frames

    def probability(self, rgb):
        """The frame's map in [0, 1], H x W float32."""
        if self.stable and self.previous is not None and self.previous[0].shape == rgb.shape:
            changed = change_mask(self.previous[0], rgb)
            if not changed.any():
                self.reused += 1.0
                prob = self.previous[1]
            else:
                fresh = self.cutter.probability(rgb, faces=self.faces)
                self.forwards += 1
                prob = np.where(changed, fresh, self.previous[1]).astype(np.float32)
                self.reused += 1.0 - float(changed.mean())
        else:
            prob = self.cutter.probability(rgb, faces=self.faces)
            self.forwards += 1
        self.previous = (rgb, prob)
        return prob

    def mask(self, frame):
        """uint8 alpha of one RGBA frame (the cutout's options applied, the frame's own alpha kept)."""
        rgba = np.asarray(frame.convert("RGBA"))
        alpha = postprocess(self.probability(np.ascontiguousarray(rgba[..., :3])), **self.options)
        return np.minimum(alpha, rgba[..., 3])

    def cutout(self, frame, clean_edges=True):
        """The RGBA frame with the mask as its alpha (edge colours decontaminated by default)."""
        rgba = np.array(frame.convert("RGBA"))
        rgba[..., 3] = self.mask(frame)
        return Image.fromarray(decontaminate(rgba) if clean_edges else rgba)


def parse_matte(text):
    """'#rrggbb' or 'rrggbb' -> (r, g, b); ValueError otherwise."""
    text = (text or "").strip().lstrip("#")
    if len(text) != 6:
        raise ValueError("a matte colour is six hex digits")
    return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))


def _gif_frame(rgba, matte):
    """An RGBA frame as a palette frame with index 255 transparent: the colours laid over `matte`."""
    arr = np.asarray(rgba.convert("RGBA"))
    solid = Image.new("RGB", rgba.size, matte)
    solid.paste(rgba, mask=rgba.getchannel("A"))
    quantised = solid.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    indices = np.array(quantised)
    indices[arr[..., 3] < 128] = 255
    palette = (quantised.getpalette() or [])[:255 * 3]
    palette += [0] * (255 * 3 - len(palette)) + list(matte)
    out = Image.fromarray(indices, "P")
    out.putpalette(palette)
    out.info["transparency"] = 255
    return out


def encode(frames, durations, loop, fmt="webp", matte=DEFAULT_MATTE):
    """Bytes of the sticker: `frames` (RGBA or L PIL images) with their delays (ms) and loop count."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}")
    # None: the file named no loop count and plays once. GIF says so by leaving the count out;
    # WebP and APNG count plays, so once is 1. A count given is kept as it was written.
    loops = {} if loop is None and fmt == "gif" else {"loop": 1 if loop is None else int(loop)}
    out = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:  # PNGs do not compress further
            for index, frame in enumerate(frames):
                z.writestr(f"{index:04d}.png", imaging.png_bytes(frame))
            z.writestr("timing.json", json.dumps({"durations_ms": list(durations), "loop": loop}))
        return out.getvalue()
    if fmt == "gif":
        images = [_gif_frame(f.convert("RGBA"), matte) for f in frames]
        # disposal 2: each frame's transparent pixels show the page, not the frame before.
        images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=list(durations),
                       **loops, disposal=2, transparency=255, optimize=False)
        return out.getvalue()
    images = [f if f.mode in ("RGBA", "RGB") else f.convert("RGB") for f in frames]
    if fmt == "webp":
        # Lossy colour at quality 90, lossless alpha: about a fifth of lossless WebP's bytes.
        images[0].save(out, "WEBP", save_all=True, append_images=images[1:], duration=list(durations),
                       **loops, quality=90, method=4, lossless=False, alpha_quality=100)
    else:
        images[0].save(out, "PNG", save_all=True, append_images=images[1:], duration=list(durations),
                       **loops, compress_level=1, default_image=False)
    return out.getvalue()


class Stopped(Exception):
    """The caller's `keep_going` said stop (a cancelled job): nothing is returned."""


def make_sticker(data, cutter, budgets, *, fmt="webp", output="image", matte=DEFAULT_MATTE,
                 clean_edges=True, max_bytes=imaging.DEFAULT_MAX_BYTES, keep_going=None, **options):
    """Untrusted animation bytes -> (sticker bytes, description). Frames are decoded one at a time
    (app/inference/animation.py checks the budgets first); keep_going(done, total) is called after
    each frame and a False stops the work at once (Stopped)."""
    from app.inference import animation

    meta, frames = animation.iter_frames(data, budgets, max_bytes)
    total = meta.info["frames"]
    stable = StickerCutter(cutter, **options)
    outs, durations = [], []
    for index, frame, delay in frames:
        outs.append(Image.fromarray(stable.mask(frame)) if output == "mask" else stable.cutout(frame, clean_edges))
        durations.append(delay)
        if keep_going is not None and not keep_going(index + 1, total):
            frames.close()
            raise Stopped()
    body = encode(outs, durations, meta.loop, fmt, matte)
    mimetype, ext = FORMATS[fmt]
    return body, {"name": f"sticker.{ext}", "mimetype": mimetype, "bytes": len(body), "frames": len(outs),
                  "durations_ms": durations, "loop": meta.loop, "width": outs[0].width, "height": outs[0].height,
                  "source_format": meta.source_format, "source_size": list(meta.source_size),
                  "network_frames": stable.forwards}
