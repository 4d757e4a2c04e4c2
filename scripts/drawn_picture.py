"""The synthetic test picture the benchmark and the load script send: a demo-cast backdrop when
fetched (else a gradient) with simple figures drawn on it. No app or torch imports."""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent


def drawn_picture(width, height, seed=0, figures=3, top=3):
    """RGB picture of width x height with `figures` heads and bodies whose feet lie below height // top."""
    backdrops = sorted((ROOT / ".cache" / "demo_cast" / "backgrounds").glob("*.jpg"))
    if backdrops:
        with Image.open(backdrops[0]) as im:
            base = im.convert("RGB").resize((width, height), Image.BICUBIC)
    else:
        y, x = np.mgrid[0:height, 0:width]
        base = Image.fromarray(np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)],
                                        -1).astype(np.uint8))
    rng = np.random.default_rng(seed)
    draw = ImageDraw.Draw(base)
    r = min(width, height) // 6
    for _ in range(figures):
        cx, cy = int(rng.integers(width // 4, 3 * width // 4)), int(rng.integers(height // top, height))
        draw.ellipse((cx - r, cy - 2 * r, cx + r, cy), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw.rectangle((cx - r, cy - r // 2, cx + r, height), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return base.filter(ImageFilter.GaussianBlur(1))
