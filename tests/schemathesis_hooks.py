"""Schemathesis hooks for tests/test_openapi.py: pictures worth sending, not only random bytes.

Loaded by the schemathesis CLI through SCHEMATHESIS_HOOKS. The OpenAPI description says a
picture is `format: binary`; random bytes exercise little past the format check, so half of the
draws here are real PNG, JPEG and WebP files of any size from 1 x 1 to slivers (up to 3000:1),
in every mode the decoder meets (RGB, RGBA, grey, palette, 16-bit), some of them cut short.
"""
import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

MODES = ("RGB", "RGBA", "L", "P", "I;16")


@st.composite
def pictures(draw):
    """Bytes of a real picture (sometimes truncated), or arbitrary bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=2048))
    width = draw(st.sampled_from([1, 2, 3, 17, 64, 300, 900, 3000]))
    height = draw(st.sampled_from([1, 2, 5, 48, 256, 700]))
    if draw(st.booleans()):
        width, height = height, width
    mode, fmt = draw(st.sampled_from(MODES)), draw(st.sampled_from(["PNG", "JPEG", "WEBP"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), np.uint8))
    if mode == "I;16":
        image = image.convert("L").convert("I;16") if fmt == "PNG" else image
    elif fmt == "JPEG" and mode in ("RGBA", "P"):
        image = image.convert("RGB")
    elif not (fmt == "WEBP" and mode in ("L", "P")):
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    data = out.getvalue()
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(1, max(1, len(data) - 1)))]
    return data


schemathesis.openapi.format("binary", pictures())
