"""Query options of a cutout request, read the same way by /api/cutout, /api/jobs and stickers."""
from app.errors import APIError
from app.i18n import _
from app.inference import imaging
from app.inference.cutout import ALPHAS


def cutout_options(args):
    """Post-processing switches from the query: alpha=soft|hard|raw, threshold=0..1, largest=1, clean=1."""
    alpha = args.get("alpha", "soft")
    if alpha not in ALPHAS:
        raise APIError(_("alpha must be one of: %(choices)s.", choices=", ".join(ALPHAS)), 400, "bad_option")
    try:
        threshold = float(args.get("threshold", "0.5"))
    except ValueError:
        threshold = -1.0
    if not 0.0 < threshold < 1.0:
        raise APIError(_("threshold must be a number between 0 and 1."), 400, "bad_option")
    flags = {key: switch(args, name, "0") for name, key in (("largest", "largest_component"), ("clean", "clean"))}
    return {"alpha": alpha, "threshold": threshold, **flags}


def background_colour(args, output):
    """`background=RRGGBB`: the colour a cutout is laid over (an opaque answer), or None when not
    asked; 400 on a bad colour, or with output=mask (a mask has no background)."""
    text = args.get("background")
    if text is None or text == "":
        return None
    try:
        colour = imaging.parse_colour(text)
    except ValueError:
        raise APIError(_("background must be a colour as six hex digits, e.g. ffffff."), 400, "bad_option") from None
    if output == "mask":
        raise APIError(_("background applies to output=image only."), 400, "bad_option")
    return list(colour)


def switch(args, name, default):
    """A 0/1 query switch."""
    value = args.get(name, default)
    if value not in ("0", "1"):
        raise APIError(_("%(name)s must be 0 or 1.", name=name), 400, "bad_option")
    return value == "1"
