"""Short video clips in (MP4, WebM): read by the system's ffmpeg, frame by frame, within the
animation budgets (app/inference/animation.py).

ffprobe reads the container's header first: frames (counted from the stream's frame count, or its
duration times its frame rate), seconds and size are checked against the budgets before a frame
is decoded. The decoder is then held to the budgets too (`-frames:v`, `-t`), so a header that
lies costs no more than the budgets allow. Frames arrive as raw RGBA through a pipe, already
scaled to ANIMATION_MAX_SIDE, one at a time; each delay is the stream's frame duration, and a
clip loops forever as a sticker (video has no loop count).
"""
import json
import math
import shutil
import subprocess
import tempfile

from PIL import Image

from app.errors import APIError
from app.i18n import _
from app.inference import imaging

PROBE_SECONDS = 20  # a header that takes longer to read is not a short clip


def sniff(data):
    """'MP4' (an ISO media file: ftyp box first) or 'WEBM' (Matroska/EBML), else None."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "MP4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "WEBM"
    return None


def _ffmpeg(name):
    path = shutil.which(name)
    if path is None:
        raise APIError(_("Video clips cannot be read on this server."), 503, "clips_unavailable")
    return path


def _bad(fmt):
    return APIError(_("The %(format)s image could not be decoded (truncated or corrupt).", format=fmt), 400,
                    "bad_image")


def probe(path, fmt):
    """(width, height, frames, seconds, fps) of the clip's first video stream, from its header."""
    try:
        done = subprocess.run([_ffmpeg("ffprobe"), "-v", "error", "-select_streams", "v:0", "-show_entries",
                               "stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,duration:format=duration",
                               "-of", "json", str(path)], capture_output=True, timeout=PROBE_SECONDS, check=False)
        info = json.loads(done.stdout or b"{}")
        stream = info["streams"][0]
        width, height = int(stream["width"]), int(stream["height"])
    except (subprocess.TimeoutExpired, ValueError, KeyError, IndexError, TypeError):
        raise _bad(fmt) from None
    fps = 0.0
    for key in ("avg_frame_rate", "r_frame_rate"):
        num, _slash, den = str(stream.get(key, "0/0")).partition("/")
        try:
            fps = float(num) / float(den or 1)
        except (ValueError, ZeroDivisionError):
            fps = 0.0
        if fps > 0:
            break
    seconds = 0.0
    for value in (stream.get("duration"), info.get("format", {}).get("duration")):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if seconds > 0:
            break
    if fps <= 0 or not math.isfinite(fps) or width < 1 or height < 1:
        raise _bad(fmt)
    try:
        frames = int(stream["nb_frames"])
    except (KeyError, TypeError, ValueError):
        frames = int(math.ceil(seconds * fps))
    return width, height, max(1, frames), seconds, fps


def check(width, height, frames, seconds, budgets):
    """APIError 413 when the header's figures pass a budget."""

    if width * height > budgets.frame_pixels:
        raise APIError(_("The animation's frames are %(width)dx%(height)d; at most %(limit)d pixels "
                         "per frame are accepted.", width=width, height=height, limit=budgets.frame_pixels),
                       413, "image_too_large")
    if frames > budgets.frames:
        raise too_many_frames(frames, budgets)
    if seconds > budgets.seconds:
        raise APIError(_("The animation is longer than %(limit)s seconds.", limit=f"{budgets.seconds:g}"), 413,
                       "animation_too_long")
    out_w, out_h = imaging.fitted_size(width, height, max_side=budgets.max_side)
    if frames * out_w * out_h > budgets.total_pixels:
        raise APIError(_("The animation's %(count)d frames of %(width)dx%(height)d add up to more than "
                         "%(limit)d pixels.", count=frames, width=out_w, height=out_h,
                         limit=budgets.total_pixels), 413, "animation_too_large")


def open_clip(data, fmt, budgets):
    """(temporary file holding the clip, (width, height, frames, seconds, fps)) after the header checks.
    The caller closes the file."""
    handle = tempfile.NamedTemporaryFile(suffix="." + fmt.lower())  # deleted when closed
    try:
        handle.write(data)
        handle.flush()
        header = probe(handle.name, fmt)
        check(*header[:4], budgets)
    except BaseException:
        handle.close()
        raise
    return handle, header


def frames(handle, fmt, header, budgets):
    """Generator of (index, RGBA PIL frame, delay ms), decoded by ffmpeg within the budgets."""
    width, height, count, _seconds, fps = header
    out_w, out_h = imaging.fitted_size(width, height, max_side=budgets.max_side)
    delay = max(1, int(round(1000.0 / fps)))
    command = [_ffmpeg("ffmpeg"), "-v", "error", "-nostdin", "-i", handle.name, "-map", "0:v:0",
               "-frames:v", str(budgets.frames), "-t", f"{budgets.seconds:g}",
               "-vf", f"scale={out_w}:{out_h}:flags=lanczos", "-f", "rawvideo", "-pix_fmt", "rgba", "pipe:1"]
    size = out_w * out_h * 4
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    index = 0
    try:
        while True:
            chunk = process.stdout.read(size)
            if len(chunk) < size:
                break
            yield index, Image.frombytes("RGBA", (out_w, out_h), chunk), delay
            index += 1
    finally:
        process.kill()
        process.stdout.close()
        process.wait()
        handle.close()
    if index == 0:
        raise _bad(fmt)


def too_many_frames(count, budgets):
    return APIError(_("The animation has %(count)d frames; at most %(limit)d are accepted.",
                      count=count, limit=budgets.frames), 413, "too_many_frames")
