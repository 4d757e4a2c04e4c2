"""Animated pictures in: GIF, animated WebP and APNG read frame by frame, within budgets (short
MP4/WebM clips through ffmpeg: app/inference/clips.py).

The budgets (app/config.py ANIMATION_*) are checked before the pixels they guard are decoded:
frames and pixels per frame from the header (Pillow counts a GIF's frames by walking its block
headers, decoding nothing), their product against the total, and seconds as the frames' delays
add up, so an animation past a budget is refused at the first frame that passes it, never
after decoding all of it. Pillow composites each frame onto the canvas as the file's disposal
and blend say, so every frame read here is the whole picture as a viewer shows it.

Frames are scaled down on arrival so that their longer side is at most ANIMATION_MAX_SIDE: a
sticker needs no more, and the memory an animation holds is bounded by frames x that size.
"""
import io
import warnings
from dataclasses import dataclass, field

from PIL import Image, ImageFile

from app.config import DEFAULTS
from app.errors import APIError
from app.i18n import _
from app.inference import clips, imaging

ImageFile.LOAD_TRUNCATED_IMAGES = False

# Browsers play a GIF delay under 20 ms (0 included) as 100 ms; so do we, or the sticker would race.
GIF_MIN_DELAY_MS = 20
GIF_DEFAULT_DELAY_MS = 100
FORMATS = ("GIF", "WEBP", "PNG")



@dataclass
class Budgets:
    """Limits for one animation (see app/config.py ANIMATION_*)."""
    frames: int
    seconds: float
    frame_pixels: int
    total_pixels: int
    max_side: int

    @classmethod
    def from_config(cls, config):
        get = lambda key: config.get(key) or DEFAULTS[key]  # noqa: E731 - a plain dict gets the defaults
        return cls(int(get("ANIMATION_MAX_FRAMES")), float(get("ANIMATION_MAX_SECONDS")),
                   int(get("ANIMATION_MAX_FRAME_PIXELS")), int(get("ANIMATION_MAX_TOTAL_PIXELS")),
                   int(get("ANIMATION_MAX_SIDE")))


@dataclass
class Animation:
    """Decoded frames (RGBA PIL images, all one size), their delays in ms, and the loop
    count (0: forever; None: the file names none and plays once)."""
    frames: list
    durations: list
    loop: int | None
    source_format: str
    source_size: tuple
    info: dict = field(default_factory=dict)

    @property
    def size(self):
        return self.frames[0].size

    @property
    def seconds(self):
        return sum(self.durations) / 1000.0


def sniff(data):
    """'GIF', 'WEBP' or 'PNG' when the bytes are one of the animated formats' signatures, else None."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    fmt = imaging.sniff_format(data)
    return fmt if fmt in ("WEBP", "PNG") else None


def is_animation(data):
    """True for a GIF (any GIF: one frame or many), an MP4 or WebM clip, and a WebP or PNG of more
    than one frame. Reads the header only. A still PNG or WebP is a picture and goes the
    single-picture way."""

    fmt = sniff(data)
    if fmt == "GIF" or clips.sniff(data):
        return True
    if fmt is None:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as image:
                return bool(getattr(image, "is_animated", False))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return False  # the picture path says what is wrong with it


def _bad(fmt):
    return APIError(_("The %(format)s image could not be decoded (truncated or corrupt).", format=fmt), 400,
                    "bad_image")


def open_animation(data, budgets, max_bytes=imaging.DEFAULT_MAX_BYTES):
    """Untrusted bytes -> (format, opened image, frame count) after every check the header allows."""
    _size_checks(data, max_bytes)
    fmt = sniff(data)
    if fmt is None:
        raise APIError(_("Only GIF, animated WebP, animated PNG, MP4 and WebM are accepted as animations."),
                       415, "unsupported_type")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = image.size
            if width < 1 or height < 1:
                raise APIError(_("The image has no pixels."), 400, "bad_image")
            if width * height > budgets.frame_pixels:
                raise APIError(_("The animation's frames are %(width)dx%(height)d; at most %(limit)d pixels "
                                 "per frame are accepted.", width=width, height=height,
                                 limit=budgets.frame_pixels), 413, "image_too_large")
            count = _count_frames(image, budgets)
    except Image.DecompressionBombError:
        raise APIError(_("The image has more than %(limit)d pixels.", limit=budgets.frame_pixels), 413,
                       "image_too_large") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _bad(fmt) from exc
    out_w, out_h = imaging.fitted_size(width, height, max_side=budgets.max_side)
    if count * out_w * out_h > budgets.total_pixels:
        raise APIError(_("The animation's %(count)d frames of %(width)dx%(height)d add up to more than "
                         "%(limit)d pixels.", count=count, width=out_w, height=out_h,
                         limit=budgets.total_pixels), 413, "animation_too_large")
    return fmt, image, count


def _count_frames(image, budgets):
    """The number of frames, refused past the budget. WebP and APNG say it in their header; a GIF is
    counted by Pillow walking block headers (nothing decoded), stopped as soon as it passes the budget."""
    if image.format != "GIF":
        count = int(getattr(image, "n_frames", 1))
        if count > budgets.frames:
            raise clips.too_many_frames(count, budgets)
        return count
    # Pillow's GIF n_frames walks the whole file; a GIF of a million empty frames would take long.
    # Its seek walks the headers the same way, so stop at the budget + 1.
    count = 1
    try:
        while True:
            image._seek(count, update_image=False)  # noqa: SLF001 - header only; n_frames uses the same
            count += 1
            if count > budgets.frames:
                raise clips.too_many_frames(count, budgets)
    except EOFError:
        pass
    image.seek(0)
    return count


def frame_delay(image, fmt):
    """The delay of the frame `image` is on, in ms."""
    delay = image.info.get("duration")
    delay = int(round(float(delay))) if delay is not None else 0
    if fmt == "GIF" and delay < GIF_MIN_DELAY_MS:
        return GIF_DEFAULT_DELAY_MS
    return max(0, delay) or GIF_DEFAULT_DELAY_MS


def check_header(data, budgets, max_bytes=imaging.DEFAULT_MAX_BYTES):
    """Every check the header allows (nothing decoded); the number of frames."""

    fmt = clips.sniff(data)
    if fmt:
        _size_checks(data, max_bytes)
        handle, header = clips.open_clip(data, fmt, budgets)
        handle.close()
        return header[2]
    _fmt, image, count = open_animation(data, budgets, max_bytes)
    image.close()
    return count


def _size_checks(data, max_bytes):
    if not data:
        raise APIError(_("The file is empty."), 400, "empty_file")
    if len(data) > max_bytes:
        raise APIError(_("The file is larger than %(limit)d bytes.", limit=max_bytes), 413, "file_too_large")


def iter_frames(data, budgets, max_bytes=imaging.DEFAULT_MAX_BYTES):
    """(Animation with no frames yet, generator of (index, frame, delay_ms)): frames decoded one at
    a time, each composited, RGBA, scaled down to the budget's side. The seconds budget is
    checked as delays add up: past it the generator raises APIError 413 before the next frame.
    MP4 and WebM clips are read by ffmpeg (app/inference/clips.py)."""

    clip_format = clips.sniff(data)
    if clip_format:
        _size_checks(data, max_bytes)
        handle, header = clips.open_clip(data, clip_format, budgets)
        meta = Animation([], [], 0, clip_format, header[:2], {"frames": header[2]})
        return meta, clips.frames(handle, clip_format, header, budgets)
    fmt, image, count = open_animation(data, budgets, max_bytes)
    loop = image.info.get("loop")
    meta = Animation([], [], None if loop is None else int(loop), fmt, image.size, {"frames": count})

    def frames():
        elapsed = 0
        try:
            for index in range(count):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                        image.seek(index)
                        image.load()
                    delay = frame_delay(image, fmt)
                    # RGBA always: a GIF's first frame may be opaque and the next ones not.
                    frame = imaging.shrink(image.convert("RGBA"), max_side=budgets.max_side)
                except (OSError, SyntaxError, ValueError, EOFError) as exc:
                    raise _bad(fmt) from exc
                elapsed += delay
                if elapsed > budgets.seconds * 1000:
                    raise APIError(_("The animation is longer than %(limit)s seconds.",
                                     limit=f"{budgets.seconds:g}"), 413, "animation_too_long")
                yield index, frame, delay
        finally:
            image.close()
    return meta, frames()


def decode_animation(data, budgets, max_bytes=imaging.DEFAULT_MAX_BYTES):
    """Every frame of an animation in memory (bounded by the budgets); an Animation."""
    meta, frames = iter_frames(data, budgets, max_bytes)
    for _index, frame, delay in frames:
        meta.frames.append(frame)
        meta.durations.append(delay)
    return meta
