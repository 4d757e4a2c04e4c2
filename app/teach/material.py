"""Frames from teaching material: a video (ffmpeg), an animated picture (Pillow) or a folder of
pictures, sampled every `every_s` seconds and scaled to at most MAX_SIDE, each marked when a
scene cut lies between it and the frame before (so that no face track crosses a cut).
"""
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from app.inference.face_crops import load_rgb  # the one reader of picture files (EXIF turned)

PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}  # face_dataset.IMAGE_SUFFIXES

MAX_SIDE = 640  # the cascade finds a character's face at this size; larger frames only cost time
EVERY_S = 0.25  # four frames a second: a face moves little between two, so tracks link by overlap
MAX_FRAMES = 3600  # fifteen minutes at EVERY_S: longer material is refused, not silently cut
# Colour histograms of two frames further apart than this (half the L1 distance, 0..1) are a cut:
# a pan, a zoom or a pose change keeps the backdrop's colours, a new scene does not.
CUT_DISTANCE = 0.3


class MaterialError(ValueError):
    """The material is not a video, animated picture or folder of pictures this can read."""


class TooLong(MaterialError):
    """The material has more frames than MAX_FRAMES at the sampling rate."""


@dataclass
class Frame:
    index: int
    seconds: float  # time in the video; the picture's place in a folder
    rgb: np.ndarray
    cut: bool  # a scene cut lies between this frame and the one before


def _histogram(rgb):
    small = rgb[::4, ::4].reshape(-1, 3) // 32  # 8 levels per channel
    codes = small[:, 0].astype(np.int32) * 64 + small[:, 1] * 8 + small[:, 2]
    hist = np.bincount(codes, minlength=512).astype(np.float32)
    return hist / max(1.0, hist.sum())


def _scaled(rgb, max_side=MAX_SIDE):
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return np.ascontiguousarray(rgb)
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def probe_video(path):
    """(width, height, seconds) of a video's first video stream (ffprobe); MaterialError if none."""
    if shutil.which("ffprobe") is None:
        raise RuntimeError("reading videos needs ffmpeg (apt-get install ffmpeg)")
    result = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                             "stream=width,height,duration:format=duration,format_name", "-of", "json",
                             str(path)], capture_output=True, text=True, timeout=60)
    try:
        info = json.loads(result.stdout or "{}")
        stream = info["streams"][0]
        width, height = int(stream["width"]), int(stream["height"])
        seconds = float(stream.get("duration") or info.get("format", {}).get("duration") or 0)
    except (KeyError, IndexError, ValueError, TypeError):
        raise MaterialError(f"{Path(path).name} is not a video ffmpeg can read") from None
    if width < 1 or height < 1:
        raise MaterialError(f"{Path(path).name} has no picture")
    return width, height, seconds


def _video_frames(path, every_s, max_side):
    width, height, seconds = probe_video(path)
    if seconds / every_s > MAX_FRAMES:
        raise TooLong(f"{Path(path).name} lasts {seconds:.0f} s; at most {MAX_FRAMES * every_s:.0f} s")
    scale = min(1.0, max_side / max(width, height))
    w, h = max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)
    # round=inf: frame k is the one on screen at k * every_s (the default rounding takes the next one).
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-threads", "1", "-i", str(path), "-an",
               "-vf", f"fps=1/{every_s}:round=inf,scale={w}:{h}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    size = w * h * 3
    try:
        index = 0
        while True:
            data = process.stdout.read(size)
            if len(data) < size:
                break
            if index >= MAX_FRAMES:
                raise TooLong(f"{Path(path).name} has more than {MAX_FRAMES} frames at {every_s} s apart")
            yield index * every_s, np.frombuffer(data, np.uint8).reshape(h, w, 3)
            index += 1
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()
        process.wait()
        error = process.stderr.read().decode(errors="replace").strip()
        process.stderr.close()
    if process.returncode not in (0, -9) and error:
        raise MaterialError(f"ffmpeg could not read {Path(path).name}: {error[-300:]}")


def _animation_frames(image, every_s, max_side):
    """Frames of an animated picture, one every `every_s` of its own timing (each one if faster)."""
    clock, next_at, index = 0.0, 0.0, 0
    for frame in ImageSequence.Iterator(image):
        if clock >= next_at:
            if index >= MAX_FRAMES:
                raise TooLong(f"the animation has more than {MAX_FRAMES} frames at {every_s} s apart")
            yield clock, _scaled(np.asarray(frame.convert("RGB")), max_side)
            index += 1
            next_at = clock + every_s
        clock += max(0.02, (frame.info.get("duration") or 100) / 1000)


def picture_paths(folder):
    """The pictures under `folder`, in name order (a folder of frames keeps its order)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)


def _folder_frames(folder, max_side):
    paths = picture_paths(folder)
    if not paths:
        raise MaterialError(f"{Path(folder).name} holds no pictures")
    if len(paths) > MAX_FRAMES:
        raise TooLong(f"{Path(folder).name} holds {len(paths)} pictures; at most {MAX_FRAMES}")
    for i, path in enumerate(paths):
        rgb = load_rgb(path)
        if rgb is not None:
            yield float(i), _scaled(rgb, max_side)


def kind_of(path):
    """"folder", "animation", "picture" or "video" (by content); MaterialError when none fits."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    try:
        with Image.open(path) as image:
            return "animation" if getattr(image, "n_frames", 1) > 1 else "picture"
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        pass
    probe_video(path)
    return "video"


def frames(path, every_s=EVERY_S, max_side=MAX_SIDE):
    """Yield the material's sampled Frames in order."""
    path = Path(path)
    kind = kind_of(path)
    if kind == "video":
        source = _video_frames(path, every_s, max_side)
    elif kind == "folder":
        source = _folder_frames(path, max_side)
    else:
        image = Image.open(path)
        source = _animation_frames(image, every_s, max_side)
    previous = None
    try:
        for index, (seconds, rgb) in enumerate(source):
            hist = _histogram(rgb)
            cut = previous is None or 0.5 * float(np.abs(hist - previous).sum()) > CUT_DISTANCE
            previous = hist
            yield Frame(index, seconds, rgb, cut)
    finally:
        if kind in ("animation", "picture"):
            image.close()
