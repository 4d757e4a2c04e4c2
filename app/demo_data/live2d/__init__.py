"""Live2D sample characters rendered offline in Debian Chromium: figures with exact alpha masks.

Six characters, all Live2D Inc.'s own originals, from npm (package-lock.json): shizuku,
haru (outfits 01 and 02), hibiki, koharu, haruto, chitose. `render()` poses them (expression,
motion frame, head angles, eyes, mouth, framing from whole figure to bust) reproducibly from a
seed and writes RGBA PNGs with JSON metadata, face box included, to .cache/live2d (git-ignored:
the models' terms forbid redistributing them or their renders). `load()` reads them back.

Splits (fixed before any model was trained or evaluated on them):
- test_character: every render of `haruto`. He is never in train or val, so figures on him
  are what the networks do on a character they never saw (unknown rejection, cutout).
- by pose, for the other five characters (six figures), on the render's pose number:
  pose_id % 10 in 0-7 -> train, 8 -> val, 9 -> test_pose. Each pose is drawn independently
  from (seed, figure, pose_id), so test_pose holds poses the networks never saw of characters
  they know.
- all: everything, for callers that make their own split.
The cutout networks follow these splits: training may draw the train split (`--mix` live2d),
and `composites()` makes the held-out sets live2d-characters (test_character) and live2d-poses
(test_pose) over the demo cast's test photos (app.demo_data.stream.heldout_items).
"""
from app.demo_data.live2d.cast import CHARACTERS, FIGURES, SETUP_COMMAND, ModelsMissing
from app.demo_data.live2d.dataset import (
    HELD_OUT_CHARACTERS,
    POSE_FOLDS,
    RENDER_COMMAND,
    SPLITS,
    composites,
    figure_of,
    load,
    require,
    split_of,
)
from app.demo_data.live2d.renderer import DEFAULT_CACHE, render


def is_fetched(cache_dir=DEFAULT_CACHE):
    """The source interface: True when renders are in the cache."""
    from pathlib import Path
    return any(Path(cache_dir).glob("*/[0-9]*.json"))


def fetch(cache_dir=DEFAULT_CACHE, log=print):
    """The source interface: render the default set of poses (resumable) into cache_dir."""
    return render(cache_dir, progress=lambda done, total, figure, pose_id, skipped:
                  log(f"[{done}/{total}] {figure} #{pose_id:04d}") if done % 50 == 0 or done == total else None)


__all__ = ["CHARACTERS", "DEFAULT_CACHE", "FIGURES", "HELD_OUT_CHARACTERS", "POSE_FOLDS", "RENDER_COMMAND",
           "SETUP_COMMAND", "SPLITS", "composites", "figure_of", "require",
           "ModelsMissing", "fetch", "is_fetched", "load", "render", "split_of"]
