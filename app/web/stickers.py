"""POST /api/cutout with an animated picture (GIF, animated WebP, APNG): checked here against the
animation budgets, then cut out within the request when it is small (ANIMATION_INLINE_FRAMES
frames or fewer), else queued as a job (202, its URL in Location; app/jobs/stickers.py runs it).

Query options besides /api/cutout's: `format` = webp (default) | apng | gif | zip, and `matte` =
RRGGBB, the colour a GIF's soft edges are laid over (GIF has 1-bit transparency only).
"""
import io

from flask import current_app, send_file

from app.errors import APIError
from app.i18n import _
from app.inference import animation, imaging, stickers
from app.web import registry


def read_if_animated(upload, config):
    """The upload's bytes when it is an animation, else None (its stream rewound for the picture path)."""
    if upload is None:
        return None
    data = imaging.read_upload(upload, int(config.get("MAX_CONTENT_LENGTH") or imaging.DEFAULT_MAX_BYTES))
    if animation.is_animation(data):
        return data
    upload.stream.seek(0)
    return None


def sticker_options(args):
    """{"format", "matte"} from the query, 400 on a bad one."""
    fmt = args.get("format", "webp")
    if fmt not in stickers.FORMATS:
        raise APIError(_("format must be one of: %(choices)s.", choices=", ".join(stickers.FORMATS)), 400,
                       "bad_option")
    try:
        matte = stickers.parse_matte(args.get("matte", "ffffff"))
    except ValueError:
        raise APIError(_("matte must be a colour as six hex digits, e.g. ffffff."), 400, "bad_option") from None
    return {"format": fmt, "matte": list(matte)}


def cutout_animation(data, args, output, options, clean_edges):
    """The answer to POST /api/cutout for animation bytes `data`: the sticker, or a queued job (202)."""
    from app.web import jobs

    app = current_app._get_current_object()
    config = app.config
    sticker = sticker_options(args)
    budgets = animation.Budgets.from_config(config)
    max_bytes = int(config.get("MAX_CONTENT_LENGTH") or imaging.DEFAULT_MAX_BYTES)
    # Every check the header allows, before a frame is decoded or anything is queued.
    _fmt, image, count = animation.open_animation(data, budgets, max_bytes)
    image.close()
    model = args.get("model") or None
    cutter = registry.get_cutter(model)  # an unknown model: 400 now, not a failed job later
    if count > int(config["ANIMATION_INLINE_FRAMES"]):
        job_options = {"output": output, **options, "decontaminate": clean_edges, "model": model,
                       "animation": sticker, "names": []}
        return jobs.submit(app, [data], count, job_options)
    body, description = stickers.make_sticker(
        data, cutter, budgets, fmt=sticker["format"], output=output, matte=tuple(sticker["matte"]),
        clean_edges=clean_edges, max_bytes=max_bytes, **options)
    response = send_file(io.BytesIO(body), mimetype=description["mimetype"], download_name=description["name"],
                         max_age=0)
    response.headers["X-Frames"] = str(description["frames"])
    return response
