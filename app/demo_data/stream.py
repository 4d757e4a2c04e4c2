"""Cutout training batches and evaluation sets made from the demo data.

The stream is given its figures, backgrounds and objects; `demo_stream` picks them from the
sources by a MixConfig, the one place where the demo recipe's data options live.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np

from app.demo_data import compose, hard_cases, renpy_cast

EVAL_SIZE = (448, 336)  # validation and held-out composites
HELDOUT_SETS = ("demo-cast", "portraits-dev", "live2d-characters", "live2d-poses")
# The Live2D sets: the renders' own splits (app/demo_data/live2d), which hold Haruto out whole
# and, of the other figures, the poses numbered 9 mod 10 for testing.
LIVE2D_HELDOUT = {"live2d-characters": "test_character", "live2d-poses": "test_pose"}


@dataclass
class MixConfig:
    """What demo-cast training pictures are made of, besides the cast's training sprites and photos."""
    warp: float = 0.0  # share of figures sheared, stretched and flared into new silhouettes
    extra_art: bool = False  # add the Ren'Py packages' bust and chibi pictures (renpy_cast.EXTRA_ART)
    portraits: float = 0.0  # share of figures drawn from Wesnoth's portraits
    clipart: float = 0.0  # share of figures drawn from clip-art people
    backdrops: bool = False  # wallpapers and painted landscapes as extra training backgrounds
    distractors: float = 0.0  # share of pictures with objects pasted behind the figures
    live2d: float = 0.0  # share of figures drawn from the Live2D renders' training split (`demo render`)
    # share of pictures drawn as the field bench's hard kinds (app/demo_data/hard_cases.py): busts,
    # small figures, wallpapers, overlapping groups, painted backgrounds, cartoon props, shadows
    hard_cases: float = 0.0


class CompositeStream:
    """Endless training composites (numpy pictures and masks) made from what it is given; the
    training side (app/training/cutout_data.py's Batcher) augments them and makes the tensors.

    figures: the main figures; others: [(share, figures)] that replace a main figure at that
    share; photos and backdrops: RGB backgrounds (backdrops take half of the photo draws);
    objects: RGBA pasted behind the figures in `object_share` of the pictures.
    """

    def __init__(self, size, figures, photos, *, others=(), backdrops=(), objects=(),
                 object_share=0.0, warp=0.0, hard_cases=0.0, seed=0):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.figures = list(figures)
        self.others = [(share, list(group)) for share, group in others if share and group]
        self.photos = list(photos)
        self.backdrops = list(backdrops)
        self.objects = list(objects)
        self.object_share = object_share
        self.warp = warp
        self.hard_cases = hard_cases
        # Landscape, square and portrait pictures (inference squashes each to a square), composed
        # at about twice the training size (at most 1024): resizing the figures is most of the
        # data's cost.
        side = min(2 * size, 1024)
        self.shapes = ((side * 4 // 3, side), (side, side), (side, side * 4 // 3))

    def composite(self):
        """One training Composite."""
        rng = self.rng
        if self.hard_cases and rng.random() < self.hard_cases:
            return self._hard_case()
        shape = self.shapes[rng.integers(len(self.shapes))]
        background = compose.training_background(rng, self.photos, shape, self.backdrops)
        if self.objects and rng.random() < self.object_share:
            background = compose.paste_objects(rng, background, self.objects, int(rng.integers(1, 4)))
        n = 1 if rng.random() < 0.7 else 2
        chosen = [self.figures[j] for j in rng.choice(len(self.figures), n, replace=False)]
        if self.others:
            chosen = [self._other(f) for f in chosen]
        if self.warp:
            chosen = [dataclasses.replace(f, rgba=compose.warp_figure(rng, f.rgba))
                      if rng.random() < self.warp else f for f in chosen]
        return compose.compose(rng, chosen, background, shape)

    def _hard_case(self):
        rng = self.rng
        size = hard_cases.shape(rng, self.shapes[1][0])
        background = hard_cases.background(rng, lambda r: compose.pick_photo(r, self.photos, self.backdrops), size)
        n = int(rng.integers(2, 4))
        chosen = [self._other(self.figures[j]) for j in rng.choice(len(self.figures), n, replace=False)]
        return hard_cases.hard_case(rng, chosen, background)

    def _other(self, figure):
        r, edge = self.rng.random(), 0.0
        for share, group in self.others:
            edge += share
            if r < edge:
                return group[self.rng.integers(len(group))]
        return figure

    def pair(self):
        """One training composite as (H x W x 3 uint8 picture, H x W uint8 mask)."""
        c = self.composite()
        return c.image, c.mask


def demo_stream(mix, size, seed=0):
    """A CompositeStream of the demo cast's training split plus what `mix` (a MixConfig) adds."""
    spec = renpy_cast.SPLITS["train"]
    figures = renpy_cast.load_sprites(renpy_cast.DEFAULT_CACHE, spec["sprites"])
    if mix.extra_art:
        figures += renpy_cast.load_extra_art()
    photos = renpy_cast.load_backgrounds(renpy_cast.DEFAULT_CACHE, spec["backgrounds"])
    others, backdrops, objects = [], [], []
    if mix.portraits:
        from app.demo_data import portraits
        others.append((mix.portraits, portraits.load(split="train")))
    if mix.clipart:
        from app.demo_data import clipart
        others.append((mix.clipart, clipart.load()))
    if mix.live2d:
        # Poses 0-7 mod 10 of every figure but Haruto: never a validation or held-out picture's.
        from app.demo_data import live2d
        others.append((mix.live2d, live2d.require(live2d.DEFAULT_CACHE, "train")))
    if mix.backdrops:
        from app.demo_data import backdrops as backdrop_art
        backdrops = backdrop_art.load()
    if mix.distractors:
        from app.demo_data import distractors
        objects = distractors.load()
    return CompositeStream(size, figures, [photos[k] for k in sorted(photos)], others=others,
                           backdrops=backdrops, objects=objects, object_share=mix.distractors,
                           warp=mix.warp, hard_cases=mix.hard_cases, seed=seed)


def validation_pairs(count, seed=0, size=EVAL_SIZE, live2d_count=0, hard_count=0):
    """A fixed list of (image, mask) validation composites (the best checkpoint is chosen on them):
    `count` of the demo cast's val split, then `live2d_count` of the Live2D val poses, then
    `hard_count` hard cases of both (hard_case_validation)."""
    pairs = [(c.image, c.mask) for c in renpy_cast.composites("val", count, seed=seed, size=size)]
    if live2d_count:
        from app.demo_data import live2d
        pairs += [(c.image, c.mask) for c in live2d.composites("val", live2d_count, seed=seed, size=size)]
    if hard_count:
        pairs += hard_case_validation(hard_count, seed)
    return pairs


def hard_case_validation(count, seed=0, long_side=1024):
    """`count` fixed hard-case composites (hard_cases.py) of validation figures only: the demo
    cast's val sprites and the Live2D val poses (ending in 8) over the val photos, for choosing a
    checkpoint of a round that trains on hard cases."""
    from app.demo_data import live2d
    spec = renpy_cast.SPLITS["val"]
    figures = renpy_cast.load_sprites(renpy_cast.DEFAULT_CACHE, spec["sprites"])
    figures += live2d.require(live2d.DEFAULT_CACHE, "val")
    photos = renpy_cast.load_backgrounds(renpy_cast.DEFAULT_CACHE, spec["backgrounds"])
    photos = [photos[k] for k in sorted(photos)]
    rng = np.random.default_rng(seed + HARD_CASE_VAL_SALT)
    pairs = []
    for i in range(count):
        size = hard_cases.shape(rng, long_side)
        background = hard_cases.background(rng, lambda r: photos[r.integers(len(photos))], size)
        chosen = [figures[j] for j in rng.choice(len(figures), 3, replace=False)]
        framing = hard_cases.FRAMINGS[i % len(hard_cases.FRAMINGS)]
        c = hard_cases.hard_case(rng, chosen, background, framing)
        pairs.append((c.image, c.mask))
    return pairs


HARD_CASE_VAL_SALT = 7_000_003


def heldout_composites(name, count=60, seed=0):
    """The Composites of a held-out set (one of HELDOUT_SETS), reproducible from `seed`."""
    if name == "demo-cast":
        return list(renpy_cast.composites("test", count, seed=seed, size=EVAL_SIZE))
    if name == "portraits-dev":
        from app.demo_data import portraits
        return list(portraits.dev_composites(count, seed=seed, size=EVAL_SIZE))
    if name in LIVE2D_HELDOUT:
        from app.demo_data import live2d
        return list(live2d.composites(LIVE2D_HELDOUT[name], count, seed=seed, size=EVAL_SIZE,
                                      cache_dir=live2d.DEFAULT_CACHE))
    raise ValueError(f"unknown held-out set {name!r}; choose one of {', '.join(HELDOUT_SETS)}")


def heldout_items(name, count=60, seed=0):
    """(image, mask, groups) items of a held-out set: "demo-cast" (the test split: final figures),
    "portraits-dev" (held-out portraits: for choosing recipes), "live2d-characters" (Haruto, a
    character never trained on) or "live2d-poses" (known Live2D figures in poses never trained on),
    grouped by figure (a Live2D figure's poses together) and background."""
    return [(c.image, c.mask, tuple(sorted({_group(name, k) for k in c.figures}))
             + (f"background {c.background}",)) for c in heldout_composites(name, count, seed)]


def _group(name, key):
    """The per-figure group of a figure key: a sprite, or a Live2D figure with all its poses."""
    if name in LIVE2D_HELDOUT:
        from app.demo_data.live2d import figure_of
        return f"figure {figure_of(key)}"
    return f"sprite {key}"


def describe_heldout(name, count):
    """One sentence saying what a held-out set holds, for model cards."""
    test = renpy_cast.SPLITS["test"]
    test_photos = (f"the demo cast's test photos ({', '.join(test['backgrounds'])}) or synthetic "
                   f"backgrounds, from a seed of its own")
    if name == "demo-cast":
        return (f"demo-cast test split: {count} composites of sprites never trained on "
                f"({', '.join(test['sprites'])}) over backgrounds never trained on "
                f"({', '.join(test['backgrounds'])} and synthetic ones from another seed)")
    if name == "portraits-dev":
        from app.demo_data import portraits
        return (f"portraits-dev: {count} composites of held-out Wesnoth portraits of people (every "
                f"{portraits.DEV_EVERY}th by name, never trained on) over the demo cast's validation "
                f"photo ({', '.join(portraits.DEV_BACKGROUNDS)}) or synthetic backgrounds")
    if name == "live2d-characters":
        from app.demo_data import live2d
        return (f"live2d-characters: {count} composites of 1-2 renders of "
                f"{' and '.join(live2d.HELD_OUT_CHARACTERS)} (Live2D; every rendered pose eligible), a "
                f"character held out whole from cutout training, over {test_photos}")
    if name == "live2d-poses":
        from app.demo_data import live2d
        return (f"live2d-poses: {count} composites of 1-2 renders of the Live2D figures other than "
                f"{' and '.join(live2d.HELD_OUT_CHARACTERS)} in their test poses (pose number % "
                f"{live2d.POSE_FOLDS} == 9, never trained on; training draws 0-7) over {test_photos}")
    raise ValueError(f"unknown held-out set {name!r}; choose one of {', '.join(HELDOUT_SETS)}")
