"""Several views of one face crop, whose backbone features are averaged before the head.

A box a person drags may be generous, oblong or off centre; the detector's is tight. The
server only ever sees the crop the page cut, so every view lies inside it:
- `box`: the crop as sent;
- `square`: the central square of the crop, side its shorter side (an oblong box made square);
- `square80`: the central square of side 0.8 x the shorter side (less outfit and background).
The card's `crop_views` names the views a head was trained and calibrated on (no entry: `box`
alone); training, calibration, evaluation and serving all call `averaged_features`, so the
product does exactly what was measured (README, "Several views of one box").
The gallery keeps the `box` view's features alone: its similarity scale was fitted on those.
"""
import numpy as np

VIEWS = ("box", "square", "square80")
SINGLE = ("box",)
_SQUARE_SIDE = {"square": 1.0, "square80": 0.8}


def views_of(card):
    """The card's crop views (a tuple starting with `box`); ValueError for a name this code lacks."""
    views = tuple(card.get("crop_views") or SINGLE)
    unknown = [v for v in views if v not in VIEWS]
    if unknown or views[0] != "box" or len(set(views)) != len(views):
        raise ValueError(f"crop_views {list(views)}: each of {list(VIEWS)} at most once, `box` first")
    return views


def view(image, name):
    """One view of a face crop (PIL)."""
    if name == "box":
        return image
    side = max(1, int(round(min(image.width, image.height) * _SQUARE_SIDE[name])))
    x0 = (image.width - side) // 2
    y0 = (image.height - side) // 2
    return image.crop((x0, y0, x0 + side, y0 + side))


def averaged_features(images, views, featurize, box_features=None):
    """N crops -> N x D mean of the features of their views; `featurize` maps a list of crops to
    their N x D features, `box_features` (the crops' own, when already computed) is reused."""
    images = list(images)
    box = featurize(images) if box_features is None else np.asarray(box_features)
    if tuple(views) == SINGLE or not images:
        return box
    total = np.asarray(box, np.float64).copy()
    for name in views[1:]:
        total += featurize([view(im, name) for im in images])
    return (total / len(views)).astype(np.float32)
