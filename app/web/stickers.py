"""POST /api/cutout with an animated picture (GIF, animated WebP, APNG) or a short clip (MP4,
WebM): checked here against the animation budgets, then cut out within the request when it is
small (ANIMATION_INLINE_FRAMES frames or fewer), else queued as a job (202, its URL in Location;
app/jobs/stickers.py runs it).

Query options besides /api/cutout's: `format` = webp (default) | apng | gif | zip, and `matte` =
RRGGBB, the colour a GIF's soft edges are laid over (GIF has 1-bit transparency only). `background`
= RRGGBB lays every frame over that colour (an opaque sticker), as for pictures.
"""
import io

from flask import current_app, send_file

from app.errors import APIError
from app.i18n import _
from app.inference import animation, imaging, stickers
from app.serving import registry
from app.web.options import background_colour, switch


def read_if_animated(upload, config):
    """The upload's bytes when it is an animation, else None (its stream rewound for the picture path)."""
    if upload is None:
        return None
    data = imaging.read_upload(upload, int(config.get("MAX_CONTENT_LENGTH") or imaging.DEFAULT_MAX_BYTES))
    if animation.is_animation(data):
        return data
    upload.stream.seek(0)
    return None


def sticker_options(args, output):
    """{"format", "matte", "background", "prompt"} from the query, 400 on a bad one."""
    fmt = args.get("format", "webp")
    if fmt not in stickers.FORMATS:
        raise APIError(_("format must be one of: %(choices)s.", choices=", ".join(stickers.FORMATS)), 400,
                       "bad_option")
    try:
        matte = imaging.parse_colour(args.get("matte", "ffffff"))
    except ValueError:
        raise APIError(_("matte must be a colour as six hex digits, e.g. ffffff."), 400, "bad_option") from None
    # prompt=1: each frame's faces, found by the picture cascade, are its prompts. Off by default:
    # on the bench clips (README) it drops nothing wrong yet adds about a tenth to the flicker.
    return {"format": fmt, "matte": list(matte), "background": background_colour(args, output),
            "prompt": switch(args, "prompt", "0")}


def cutout_animation(data, args, output, options, clean_edges):
    """The answer to POST /api/cutout for animation bytes `data`: the sticker, or a queued job (202)."""
    from app.web import jobs

    app = current_app._get_current_object()
    config = app.config
    sticker = sticker_options(args, output)
    budgets = animation.Budgets.from_config(config)
    max_bytes = int(config.get("MAX_CONTENT_LENGTH") or imaging.DEFAULT_MAX_BYTES)
    # Every check the header allows, before a frame is decoded or anything is queued.
    count = animation.check_header(data, budgets, max_bytes)
    model = args.get("model") or None
    cutter = registry.get_cutter(model)  # an unknown model: 400 now, not a failed job later
    if count > int(config["ANIMATION_INLINE_FRAMES"]):
        job_options = {"output": output, **options, "decontaminate": clean_edges, "model": model,
                       "animation": sticker, "names": []}
        return jobs.submit(app, [data], count, job_options)
    body, description = stickers.make_sticker(
        data, cutter, budgets, fmt=sticker["format"], output=output, matte=tuple(sticker["matte"]),
        clean_edges=clean_edges, max_bytes=max_bytes, background=sticker["background"], prompt=sticker["prompt"],
        **options)
    response = send_file(io.BytesIO(body), mimetype=description["mimetype"], download_name=description["name"],
                         max_age=0)
    response.headers["X-Frames"] = str(description["frames"])
    return response


def name_characters(upload):
    """POST /api/animation/characters: the characters of an animation, each once, with the frames
    it appears in (app/inference/tracks.py)."""
    import numpy as np
    from flask import jsonify

    from app.inference import faces, tracks
    from app.serving import live

    config = current_app.config
    max_bytes = int(config.get("MAX_CONTENT_LENGTH") or imaging.DEFAULT_MAX_BYTES)
    data = imaging.read_upload(upload, max_bytes)
    if not animation.is_animation(data):
        raise APIError(_("Send an animated picture (GIF, animated WebP or APNG) or a clip (MP4, WebM) under the "
                         "field 'image'."), 415, "unsupported_type")
    meta, frames = animation.iter_frames(data, animation.Budgets.from_config(config), max_bytes)
    wanted = set(tracks.sample_positions(meta.info["frames"], int(config["ANIMATION_NAME_FRAMES"])))
    per_frame = int(config["MAX_FACES"])
    positions, boxes_per_frame, crops, durations, size = [], [], [], [], None
    for index, frame, delay in frames:  # every frame is decoded (the seconds budget), some looked at
        durations.append(delay)
        if index not in wanted:
            continue
        rgb = imaging.flatten(frame)
        size = rgb.size
        try:
            boxes = faces.detect_faces(np.asarray(rgb))[:per_frame]
        except faces.CascadeMissing as exc:
            current_app.logger.error("face detection unavailable: %s", exc)
            raise APIError(_("Face detection is not installed on this server."), 503,
                           "detector_unavailable") from None
        positions.append(index)
        boxes_per_frame.append(boxes)
        crops += [imaging.shrink(rgb.crop((x, y, x + w, y + h)), int(config["MAX_FACE_PIXELS"]))
                  for x, y, w, h in boxes]
    results = []
    if crops:
        identifier = live.get_identifier()
        results = identifier.identify(crops, gallery=live.get_gallery())
        threshold = identifier.threshold
    named = tracks.name_tracks(boxes_per_frame, positions, results, threshold) if crops else []
    # Boxes in the animation's pixels as sent (frames were scaled down on arrival).
    sx, sy = meta.source_size[0] / size[0], meta.source_size[1] / size[1]
    for track in named:
        track["boxes"] = [[f, round(x * sx), round(y * sy), round(w * sx), round(h * sy)]
                          for f, x, y, w, h in track["boxes"]]
    return jsonify({"frames": len(durations), "frames_looked_at": positions, "durations_ms": durations,
                    "loop": meta.loop, "width": meta.source_size[0], "height": meta.source_size[1],
                    "characters": named})
