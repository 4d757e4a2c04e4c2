"""An animated picture's cutout as a queued job: the worker's side (app/jobs/cutouts.py runs it
for a cutout job whose options carry "animation").

The animation as sent is `in/0000`; the sticker is written whole as `sticker.<ext>` once every
frame is cut. Progress is counted in frames; after each frame the worker checks the job is still
its own, so a client's DELETE stops it at the next frame (and app/jobs/cutouts.py removes the
job's files). A retried attempt starts again from the first frame.
"""
from app.inference import animation, stickers
from app.jobs import files, store


def cut(app, job, me, cutter, options):
    """Cut out the job's animation; the result's description, or None if the job stopped being
    this worker's (cancelled, reaped)."""
    data = files.get(app, job, "in/0000")
    if data is None:
        raise FileNotFoundError(f"job {job.id}: the animation is missing")
    sticker = options["animation"]
    settings = {k: options[k] for k in ("alpha", "threshold", "largest_component", "clean")}
    try:
        body, description = stickers.make_sticker(
            data, cutter, animation.Budgets.from_config(app.config), fmt=sticker["format"],
            output=options["output"], matte=tuple(sticker["matte"]), clean_edges=options["decontaminate"],
            max_bytes=int(app.config["MAX_CONTENT_LENGTH"]), background=sticker.get("background"),
            prompt=sticker.get("prompt", False),
            keep_going=lambda done, total: store.progress(app, job.id, me, done, total), **settings)
    except stickers.Stopped:
        return None
    if not store.still_mine(app, job.id, me):
        return None
    files.put(app, job, description["name"], body)
    files.remove(app, job, "in/")  # the animation as sent is not kept past the job
    return {"animation": description}
