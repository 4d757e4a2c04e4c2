"""Animated cutouts: every frame through the serving Cutter, stable in time, and the sticker out.

Stability: a network's map wavers from frame to frame even where the figure did not change (the
rest of the picture, GIF dithering and the resize to the serving size all change its input), and
a wavering alpha is the flicker people complain of. Measured on Live2D composites
(scripts/sticker_bench.py), most of that flicker is whole blobs switching on for a frame or two,
far from the true edge, not edges that shimmer. So, per pixel of the network's maps:
1. a frame whose pixels did not change (blurred, within STILL_THRESHOLD) is not run through the
   network: the previous frame's map is its map;
2. the median of the maps of the frame before, this one and the one after (one frame of delay):
   a change that lasts one frame goes, a change that goes on (a moving edge) is kept exactly;
3. then a blend into the previous frame's result where the map moved by less than JUMP: a weight
   of STILL_WEIGHT where the frame's pixels did not change, MOVING_WEIGHT where they did; a larger
   change is taken at once, so what really moved is never held back.
stable=False cuts every frame on its own, as single pictures (the bench's comparison).

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
# Changed regions grow by this share of the frame's longer side: the network sees context, so
# pixels next to a moving part may change too.
STILL_MARGIN = 0.03
# Blend weights of the new map, and the jump taken at once: chosen on the bench clips of unitychan
# and z16 (median of 3 alone left 0.6-0.75 of the flicker; the README gives the figures on the
# characters not used to choose).
STILL_WEIGHT = 0.2
MOVING_WEIGHT = 0.3
JUMP = 0.3
MAX_PROMPT_FACES = 16  # faces of one frame used as prompts, the largest first


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
    """Frames through `cutter` (app/inference/cutout.Cutter) with the stabilisation above."""

    def __init__(self, cutter, stable=True, faces=(), prompt=False, **options):
        self.cutter = cutter
        self.stable = stable
        self.faces = list(faces)
        # prompt: each frame's faces, found by the picture cascade, are its prompts (as the page
        # sends a picture's faces): figures no face lies on are dropped from that frame's map. A
        # frame where the cascade finds none keeps the faces of the frame before.
        self.prompt = prompt
        self.options = options  # postprocess's: alpha, threshold, largest_component, clean
        self.forwards = 0  # frames run through the network

    def _prompts(self, rgb):
        if not self.prompt:
            return self.faces
        from app.inference import faces
        try:
            found = faces.detect_faces(rgb)[:MAX_PROMPT_FACES]
        except faces.CascadeMissing:
            self.prompt = False  # no cascade on this server: frames are cut out without prompts
            return self.faces
        if found:
            self.faces = found
        return self.faces

    def _fresh(self, frame, before):
        """(frame, rgb, the network's map) of one frame; an unchanged frame reuses `before`'s map."""
        rgba = np.asarray(frame.convert("RGBA"))
        rgb = np.ascontiguousarray(rgba[..., :3])
        if self.stable and before is not None and not change_mask(before[1], rgb).any():
            return frame, rgb, before[2]
        self.forwards += 1
        return frame, rgb, self.cutter.probability(rgb, faces=self._prompts(rgb))

    def maps(self, frames):
        """Generator: (frame, stabilised map H x W float32) for each PIL frame, in order (one frame behind)."""
        before = current = None
        smoothed = None
        for frame in frames:
            item = self._fresh(frame, current)
            if current is not None:
                smoothed = self._settle(before, current, item, smoothed)
                yield current[0], smoothed
            before, current = current, item
        if current is not None:
            yield current[0], self._settle(before, current, None, smoothed)

    def _settle(self, before, current, after, smoothed):
        fresh = current[2]
        if not self.stable:
            return fresh
        if before is None or smoothed is None:  # the first frame
            return fresh
        if after is not None:
            fresh = np.median(np.stack([before[2], fresh, after[2]]), axis=0).astype(np.float32)
        weight = np.where(change_mask(before[1], current[1]), MOVING_WEIGHT, STILL_WEIGHT).astype(np.float32)
        step = fresh - smoothed
        return np.where(np.abs(step) > JUMP, fresh, smoothed + weight * step).astype(np.float32)

    def alphas(self, frames):
        """Generator: (frame, uint8 alpha) per frame, the cutout's options applied, the frame's own alpha kept."""
        for frame, prob in self.maps(frames):
            own = np.asarray(frame.convert("RGBA"))[..., 3]
            yield frame, np.minimum(postprocess(prob, **self.options), own)

    @staticmethod
    def compose(frame, alpha, clean_edges=True):
        """The RGBA frame with `alpha` (edge colours decontaminated by default)."""
        rgba = np.array(frame.convert("RGBA"))
        rgba[..., 3] = alpha
        return Image.fromarray(decontaminate(rgba) if clean_edges else rgba)


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
                 clean_edges=True, max_bytes=imaging.DEFAULT_MAX_BYTES, keep_going=None, background=None,
                 prompt=False, **options):
    """Untrusted animation bytes -> (sticker bytes, description). Frames are decoded one at a time
    (app/inference/animation.py checks the budgets first); keep_going(done, total) is called after
    each frame and a False stops the work at once (Stopped). `background` (r, g, b): every cut-out
    frame laid over that colour, an opaque sticker. `prompt`: each frame's faces as prompts."""
    from app.inference import animation

    meta, frames = animation.iter_frames(data, budgets, max_bytes)
    total = meta.info["frames"]
    stable = StickerCutter(cutter, prompt=prompt, **options)
    durations = []

    def decoded():
        for _index, frame, delay in frames:
            durations.append(delay)
            yield frame

    outs = []
    try:
        for frame, alpha in stable.alphas(decoded()):
            out = Image.fromarray(alpha) if output == "mask" else stable.compose(frame, alpha, clean_edges)
            if background is not None and output != "mask":
                out = imaging.flatten(out, tuple(background)).convert("RGBA")
            outs.append(out)
            # A clip's frame count is the header's estimate: progress never passes the whole.
            if keep_going is not None and not keep_going(min(len(outs), total), total):
                raise Stopped()
    finally:
        frames.close()
    body = encode(outs, durations, meta.loop, fmt, matte)
    mimetype, ext = FORMATS[fmt]
    return body, {"name": f"sticker.{ext}", "mimetype": mimetype, "bytes": len(body), "frames": len(outs),
                  "durations_ms": durations, "loop": meta.loop, "width": outs[0].width, "height": outs[0].height,
                  "source_format": meta.source_format, "source_size": list(meta.source_size),
                  "network_frames": stable.forwards}
