"""Edge colour error of cut-outs with and without decontamination, on the demo cast's sprites.

Each sprite (its own soft alpha, so the truth is exact) is laid over strongly coloured backgrounds;
the cut-out keeps that alpha, and the error is the mean absolute difference (0-255) between the
colours of its partly transparent pixels and the sprite's own colours there. Prints JSON.
Run: .venv/bin/python scripts/edge_colour.py
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.demo_data import renpy_cast  # noqa: E402
from app.inference.decontaminate import decontaminate, edge_colour_error  # noqa: E402

BACKGROUNDS = {"orange": (255, 140, 0), "green": (0, 200, 60), "white": (255, 255, 255), "black": (0, 0, 0)}


def main():
    rows = {}
    for name, colour in BACKGROUNDS.items():
        before, after = [], []
        for sprite in renpy_cast.load_sprites():
            rgba = sprite.rgba.astype(np.float32)
            a = rgba[..., 3:] / 255.0
            shown = rgba[..., :3] * a + np.array(colour, np.float32) * (1 - a)
            cut = np.dstack([np.rint(shown).astype(np.uint8), sprite.rgba[..., 3]])
            before.append(edge_colour_error(cut, sprite.rgba[..., :3]))
            after.append(edge_colour_error(decontaminate(cut), sprite.rgba[..., :3]))
        rows[name] = {"before": round(float(np.mean(before)), 2), "after": round(float(np.mean(after)), 2)}
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
