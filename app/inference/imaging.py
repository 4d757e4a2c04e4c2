"""The single place where untrusted bytes become pixels, and pixels become PNG bytes.

Checks, in order: present and non-empty, within the byte limit, a PNG/JPEG/WebP signature
(the content decides, never the file name), dimensions within the pixel limit (read from the
header, before any pixel is decoded, so a decompression bomb costs nothing), a complete decode.
Then EXIF orientation is applied and the image is returned as RGB, or RGBA when it has alpha.
"""
import io
import warnings

from PIL import Image, ImageFile, ImageOps

from app.errors import APIError

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
        raise APIError("No file was sent.", 400, "missing_file")
    data = storage.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise APIError(f"The file is larger than {max_bytes} bytes.", 413, "file_too_large")
    return data


def decode_image(data, max_bytes=DEFAULT_MAX_BYTES, max_pixels=DEFAULT_MAX_PIXELS):
    """Untrusted bytes -> PIL image in mode RGB or RGBA, upright; APIError on anything wrong."""
    if not data:
        raise APIError("The file is empty.", 400, "empty_file")
    if len(data) > max_bytes:
        raise APIError(f"The file is larger than {max_bytes} bytes.", 413, "file_too_large")
    fmt = sniff_format(data)
    if fmt is None:
        raise APIError("Only PNG, JPEG and WebP images are accepted.", 415, "unsupported_type")
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between MAX_IMAGE_PIXELS and twice that; we check ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = image.size
            if width < 1 or height < 1:
                raise APIError("The image has no pixels.", 400, "bad_image")
            if width * height > max_pixels:
                raise APIError(f"The image is {width}x{height}; at most {max_pixels} pixels are accepted.",
                               413, "image_too_large")
            image.seek(0)  # animated PNG/WebP: the first frame
            image.load()
    except APIError:
        raise
    except Image.DecompressionBombError:
        raise APIError(f"The image has more than {max_pixels} pixels.", 413, "image_too_large") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.UnidentifiedImageError) as exc:
        raise APIError(f"The {fmt} image could not be decoded (truncated or corrupt).", 400,
                       "bad_image") from exc
    return normalise(image)


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


def decode_upload(storage, config):
    """Read and decode one uploaded file with the limits from the app config."""
    max_bytes = int(config.get("MAX_CONTENT_LENGTH") or DEFAULT_MAX_BYTES)
    data = read_upload(storage, max_bytes)
    return decode_image(data, max_bytes, int(config.get("MAX_IMAGE_PIXELS") or DEFAULT_MAX_PIXELS))
