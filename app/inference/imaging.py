"""The single place where untrusted bytes become pixels, and pixels become PNG bytes.

Checks, in order: present and non-empty, within the byte limit, a PNG/JPEG/WebP signature
(the content decides, never the file name), dimensions within the pixel limit (read from the
header, before any pixel is decoded, so a decompression bomb costs nothing), a complete decode.
Then EXIF orientation is applied and the image is returned as RGB, or RGBA when it has alpha.

Budgets hold per request as well as per picture: `decode_uploads` reads every header of a
request first and refuses the lot (413) when their decoded pixels add up to more than
MAX_REQUEST_PIXELS, so nothing is decoded for a request it would not finish. A use that needs
fewer pixels than sent (a face crop, a cutout, a stored report) passes `max_pixels` or
`max_side`: JPEGs are then decoded at a reduced scale (1/2, 1/4, 1/8), and every picture is
scaled down on arrival, so big pictures do not stay in memory for the rest of the request.
"""
import io
import math
import warnings

from PIL import Image, ImageFile, ImageOps

from app.errors import APIError
from app.i18n import _

# A truncated file is an error, not a half-grey picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False

FORMATS = ("PNG", "JPEG", "WEBP")
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000


def sniff_format(data):
    """'PNG', 'JPEG', 'WEBP' from the leading bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def read_upload(storage, max_bytes=DEFAULT_MAX_BYTES):
    """Bytes of an uploaded file (werkzeug FileStorage), at most max_bytes, else APIError 413."""
    if storage is None:
        raise APIError(_("No file was sent."), 400, "missing_file")
    data = storage.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise APIError(_("The file is larger than %(limit)d bytes.", limit=max_bytes), 413, "file_too_large")
    return data


def open_image(data, max_bytes=DEFAULT_MAX_BYTES, max_pixels=DEFAULT_MAX_PIXELS):
    """Untrusted bytes -> (format, PIL image opened but not decoded), after the size checks."""
    if not data:
        raise APIError(_("The file is empty."), 400, "empty_file")
    if len(data) > max_bytes:
        raise APIError(_("The file is larger than %(limit)d bytes.", limit=max_bytes), 413, "file_too_large")
    fmt = sniff_format(data)
    if fmt is None:
        raise APIError(_("Only PNG, JPEG and WebP images are accepted."), 415, "unsupported_type")
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between MAX_IMAGE_PIXELS and twice that; we check ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:
        raise APIError(_("The image has more than %(limit)d pixels.", limit=max_pixels), 413,
                       "image_too_large") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as exc:
        raise APIError(_("The %(format)s image could not be decoded (truncated or corrupt).", format=fmt), 400,
                       "bad_image") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise APIError(_("The image has no pixels."), 400, "bad_image")
    if width * height > max_pixels:
        raise APIError(_("The image is %(width)dx%(height)d; at most %(limit)d pixels are accepted.",
                         width=width, height=height, limit=max_pixels),
                       413, "image_too_large")
    return fmt, image


def fitted_size(width, height, max_pixels=None, max_side=None):
    """(w, h) scaled down, aspect kept, to at most max_pixels and max_side; never below 1 x 1."""
    scale = 1.0
    if max_pixels and width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
    if max_side and max(width, height) * scale > max_side:
        scale = max_side / max(width, height)
    if scale >= 1.0:
        return width, height
    w, h = max(1, int(width * scale)), max(1, int(height * scale))
    if max_pixels and w * h > max_pixels:  # a sliver (say 40000 x 1): only the long side can give
        w, h = (max(1, max_pixels // h), h) if w > h else (w, max(1, max_pixels // w))
    return w, h


def plan_decode(fmt, image, max_pixels=None, max_side=None):
    """Ask a JPEG to decode at the smallest 1/2^k scale still at least the size needed; return its size then."""
    if fmt == "JPEG" and (max_pixels or max_side):
        target = fitted_size(*image.size, max_pixels, max_side)
        if target != image.size:
            image.draft(image.mode, target)
    return image.size


def finish_decode(fmt, image, max_pixels=None, max_side=None, header_size=None):
    """Decode an opened image fully, upright, RGB or RGBA, scaled down to the limits given.

    The result's info["source_size"] is the upright size of the picture as sent (see source_size)."""
    header_size = header_size or image.size
    drafted = image.size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.seek(0)  # animated PNG/WebP: the first frame
            image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise APIError(_("The %(format)s image could not be decoded (truncated or corrupt).", format=fmt), 400,
                       "bad_image") from exc
    upright = normalise(image)
    if upright.size != drafted:  # EXIF turned it a quarter: the size as sent turns with it
        header_size = header_size[::-1]
    out = shrink(upright, max_pixels, max_side)
    out.info["source_size"] = tuple(header_size)
    return out


def source_size(image):
    """(width, height) of the picture as sent, upright, before any scaling down on arrival."""
    return tuple(image.info.get("source_size", image.size))


def decode_image(data, max_bytes=DEFAULT_MAX_BYTES, max_pixels=DEFAULT_MAX_PIXELS, max_out_pixels=None,
                 max_side=None):
    """Untrusted bytes -> PIL image in mode RGB or RGBA, upright; APIError on anything wrong.

    max_out_pixels / max_side scale the result down (aspect kept) for uses that need no more."""
    fmt, image = open_image(data, max_bytes, max_pixels)
    header = image.size
    plan_decode(fmt, image, max_out_pixels, max_side)
    return finish_decode(fmt, image, max_out_pixels, max_side, header)


def shrink(image, max_pixels=None, max_side=None):
    """`image` scaled down (Lanczos, aspect kept) to at most max_pixels and max_side; as is if it fits."""
    size = fitted_size(image.width, image.height, max_pixels, max_side)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def has_alpha(image):
    """True if the image carries transparency."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)


def normalise(image):
    """Upright RGB or RGBA copy of a decoded image (EXIF orientation, palette, 16-bit, CMYK)."""
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # broken EXIF must not reject an otherwise good picture
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale to 8 bits rather than clip.
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGBA" if has_alpha(image) else "RGB")


def flatten(image, background=(255, 255, 255)):
    """RGB version of a PIL image in any mode, transparent parts laid over `background`."""
    if image.mode == "RGB":
        return image
    if not has_alpha(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    base = Image.new("RGB", rgba.size, background)
    base.paste(rgba, mask=rgba.getchannel("A"))
    return base


def parse_colour(text):
    """'#rrggbb' or 'rrggbb' -> (r, g, b); ValueError otherwise."""
    text = (text or "").strip().lstrip("#")
    if len(text) != 6:
        raise ValueError("a colour is six hex digits")
    return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))


def png_bytes(image):
    """PNG encoding of a PIL image or a uint8 array (HxW grey, HxWx3 RGB, HxWx4 RGBA)."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    out = io.BytesIO()
    # zlib level 1, not Pillow's 6: a 720x1024 cut-out encodes about 5x faster (150 ms instead of
    # 800 ms on this project's 2-core machine, more than the network took) for a file about 20%
    # larger (scripts/benchmark.py times both).
    image.save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()


def decode_uploads(storages, config, max_pixels=None, max_side=None):
    """Read and decode the uploaded files of one request with the limits from the app config.

    Every file is read and its header checked before any is decoded: the request's total of
    decoded pixels must stay within MAX_REQUEST_PIXELS (413 otherwise). Each result is scaled
    down to max_pixels / max_side as soon as it is decoded."""
    max_bytes = int(config.get("MAX_CONTENT_LENGTH") or DEFAULT_MAX_BYTES)
    per_image = int(config.get("MAX_IMAGE_PIXELS") or DEFAULT_MAX_PIXELS)
    budget = int(config.get("MAX_REQUEST_PIXELS") or per_image)
    opened, total = [], 0
    for storage in storages:
        fmt, image = open_image(read_upload(storage, max_bytes), max_bytes, per_image)
        header = image.size
        width, height = plan_decode(fmt, image, max_pixels, max_side)
        total += width * height
        if total > budget:
            raise APIError(_("The pictures in this request add up to more than %(limit)d pixels; "
                             "send fewer or smaller pictures.", limit=budget), 413, "request_too_large")
        opened.append((fmt, image, header))
    decoded = []
    while opened:  # drop each opened file as soon as it is decoded and scaled down
        fmt, image, header = opened.pop(0)
        decoded.append(finish_decode(fmt, image, max_pixels, max_side, header))
    return decoded


def decode_upload(storage, config, max_pixels=None, max_side=None):
    """Read and decode one uploaded file with the limits from the app config."""
    return decode_uploads([storage], config, max_pixels, max_side)[0]
