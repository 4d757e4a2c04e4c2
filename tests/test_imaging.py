"""app/imaging.py: the one decoder of untrusted bytes."""
import io
import struct
import time
import zlib

import numpy as np
import pytest
from conftest import encode
from PIL import Image

from app.errors import APIError
from app.inference import imaging


def rgb(w=40, h=20):
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8))


def png_with_size(width, height):
    """A tiny PNG whose header claims width x height (the classic decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accepts_the_three_formats_by_content(fmt):
    image = imaging.decode_image(encode(rgb(), fmt))
    assert image.size == (40, 20) and image.mode == "RGB"


@pytest.mark.parametrize("data, code, status", [
    (b"", "empty_file", 400),
    (b"GIF89a" + b"\0" * 50, "unsupported_type", 415),
    (b"hello, I am a text file named picture.png", "unsupported_type", 415),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "unsupported_type", 415),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 10, "bad_image", 400),
])
def test_rejects_non_images(data, code, status):
    with pytest.raises(APIError) as err:
        imaging.decode_image(data)
    assert (err.value.code, err.value.status) == (code, status)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_rejects_truncated_files(fmt):
    data = encode(rgb(200, 200), fmt)
    with pytest.raises(APIError) as err:
        imaging.decode_image(data[: len(data) // 2])
    assert err.value.code == "bad_image"


def test_rejects_oversized_bytes():
    with pytest.raises(APIError) as err:
        imaging.decode_image(encode(rgb()), max_bytes=100)
    assert (err.value.code, err.value.status) == ("file_too_large", 413)


@pytest.mark.parametrize("width, height", [(7000, 7000), (40000, 40000), (2 ** 31 - 1, 1)])
def test_refuses_decompression_bombs_before_decoding(width, height):
    started = time.perf_counter()
    with pytest.raises(APIError) as err:
        imaging.decode_image(png_with_size(width, height))
    assert (err.value.code, err.value.status) == ("image_too_large", 413)
    assert time.perf_counter() - started < 0.5


def test_refuses_a_real_zero_filled_bomb_quickly():
    bomb = encode(Image.new("L", (9000, 5000)), "PNG")  # 45 MPx of zeros in ~50 kB
    assert len(bomb) < 200_000
    started = time.perf_counter()
    with pytest.raises(APIError) as err:
        imaging.decode_image(bomb)
    assert err.value.code == "image_too_large"
    assert time.perf_counter() - started < 0.5


def test_applies_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image = imaging.decode_image(encode(rgb(40, 20), "JPEG", exif=exif.tobytes()))
    assert image.size == (20, 40)


def test_keeps_alpha_and_flattens_on_white():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5, :, :] = (255, 0, 0, 255)  # top half opaque red, bottom half transparent
    image = imaging.decode_image(encode(rgba, "PNG"))
    assert image.mode == "RGBA"
    flat = np.asarray(imaging.flatten(image))
    assert tuple(flat[0, 0]) == (255, 0, 0) and tuple(flat[9, 9]) == (255, 255, 255)


@pytest.mark.parametrize("mode, expected", [("P", "RGB"), ("L", "RGB"), ("LA", "RGBA"), ("I;16", "RGB"),
                                             ("CMYK", "RGB")])
def test_normalises_modes(mode, expected):
    image = Image.new(mode, (8, 8))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert imaging.decode_image(encode(image, fmt)).mode == expected


def test_palette_transparency_becomes_rgba():
    image = Image.new("P", (8, 8))
    image.info["transparency"] = 0
    assert imaging.decode_image(encode(image, "PNG", transparency=0)).mode == "RGBA"


def test_png_bytes_round_trip():
    array = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(imaging.png_bytes(array)))), array)
