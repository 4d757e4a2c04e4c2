"""Animated composites with exact per-frame alpha, for tests and the sticker bench.

A Live2D render (exact alpha) moves over a background along a sticker-like path: it bobs up and
down for part of the loop and rests for the rest, as reaction stickers do; the background is
still, or pans (every pixel of it changes each frame while the figure's true alpha may not).
Each frame's true alpha is the figure's alpha where it was pasted. The figures are the field
bench's unseen Live2D characters (live2d.cast.BENCH_FIGURES, rendered by `flask --app wsgi bench
fetch`), never trained on.
"""
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from app.config import CACHE_ROOT

BENCH_LIVE2D = CACHE_ROOT / "field_bench" / "live2d"
BENCH_BACKGROUNDS = CACHE_ROOT / "field_bench" / "backgrounds"


@dataclass
class Clip:
    """RGB frames (H x W x 3 uint8), true alphas (H x W uint8), delays in ms, and provenance."""
    frames: list
    alphas: list
    durations: list
    source: str
    face_boxes: list = None


def bench_figure(character, pose=0, cache=BENCH_LIVE2D):
    """(RGBA array, face box x,y,w,h, provenance) of a bench Live2D render; FileNotFoundError if absent."""
    png = Path(cache) / f"{character}-default" / f"{pose:04d}.png"
    meta = json.loads(png.with_suffix(".json").read_text())
    return np.asarray(Image.open(png).convert("RGBA")), tuple(meta["face_box"]), f"live2d-bench:{character}#{pose}"


def bench_background(index=0, cache=BENCH_BACKGROUNDS):
    """A bench background photo as RGB array (sorted by name, `index`-th)."""
    photos = sorted(Path(cache).glob("*.jpg"))
    if not photos:
        raise FileNotFoundError(f"no bench backgrounds in {cache}")
    return np.asarray(Image.open(photos[index % len(photos)]).convert("RGB"))


def composite(figure, background, size=(640, 480), frames=24, fps=12, moving_background=False,
              bob=0.5, figure_height=0.85, face_box=None, source=""):
    """A Clip of `frames` frames of `size` (w, h): the figure bobs for the first `bob` share of the
    loop and rests for the rest; the background (cropped to cover) is still or pans sideways."""
    width, height = size
    fig = Image.fromarray(figure, "RGBA")
    scale = figure_height * height / fig.height
    fig = fig.resize((max(1, round(fig.width * scale)), max(1, round(fig.height * scale))), Image.LANCZOS)
    bg = Image.fromarray(background, "RGB")
    pan = int(width * 0.25) if moving_background else 0
    cover = max((width + pan) / bg.width, height / bg.height)
    bg = bg.resize((math.ceil(bg.width * cover), math.ceil(bg.height * cover)), Image.LANCZOS)
    delay = round(1000 / fps)
    out = Clip([], [], [delay] * frames, source, [])
    moving = max(1, round(frames * bob))
    for t in range(frames):
        lift = int(round(0.06 * height * abs(math.sin(math.pi * t / moving)))) if t < moving else 0
        x0 = (width - fig.width) // 2
        y0 = height - fig.height - lift
        shift = int(round(pan * t / max(1, frames - 1)))
        canvas = bg.crop((shift, 0, shift + width, height)).convert("RGBA")
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        layer.paste(fig, (x0, y0))
        canvas.alpha_composite(layer)
        out.frames.append(np.asarray(canvas.convert("RGB")))
        out.alphas.append(np.asarray(layer.getchannel("A")))
        if face_box is not None:
            fx, fy, fw, fh = (v * scale for v in face_box)
            out.face_boxes.append((round(x0 + fx), round(y0 + fy), round(fw), round(fh)))
    return out


def save(frames, durations, fmt, loop=0):
    """Bytes of an animated GIF/WebP/APNG of RGB(A) arrays (as a user would send it)."""
    images = [Image.fromarray(f) for f in frames]
    out = io.BytesIO()
    if fmt == "GIF":
        # One palette for every frame, from the first (as most GIF makers do): fast, and a still
        # background keeps its exact colours from frame to frame.
        first = images[0].convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
        images = [first] + [im.convert("RGB").quantize(palette=first, dither=Image.Dither.NONE)
                            for im in images[1:]]
        images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=durations, loop=loop,
                       optimize=False)
    elif fmt == "WEBP":
        images[0].save(out, "WEBP", save_all=True, append_images=images[1:], duration=durations, loop=loop,
                       quality=90)
    else:
        images[0].save(out, "PNG", save_all=True, append_images=images[1:], duration=durations, loop=loop)
    return out.getvalue()
