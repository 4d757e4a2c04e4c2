"""Batch cutouts: what a worker does with one job, and the upkeep every worker runs (heartbeats,
the reaper of jobs whose worker died, deleting results past their time).

A job's pictures are cut out one by one into `out/NNNN.png`; a retried job skips the pictures
an earlier attempt finished. Between pictures the worker checks that the job is still its own,
so a client's DELETE (or the reaper handing the job to another worker) stops it at the next
picture. At the end the PNGs are also packed into `results.zip` and the inputs deleted. Files live
where app/jobs/files.py keeps them: the report folder, or PostgreSQL.
"""
import io
import logging
import threading
import zipfile

import numpy as np
from PIL import Image

from app.errors import APIError
from app.i18n import _, message_of
from app.inference import imaging
from app.jobs import files, queue, store
from app.storage.models import Job

log = logging.getLogger(__name__)
ZIP_NAME = "results.zip"
_running = set()  # ids of the jobs this process runs now (its heartbeats)
_running_lock = threading.Lock()


def retry_delay(attempts):
    """Seconds before attempt `attempts` + 1 after an error: 2, 4, 8 ... at most 60."""
    return min(60, 2 ** attempts)


def picture_name(index):
    """The file name of picture `index` (inputs and results alike)."""
    return f"{index:04d}"


def run(app, job_id):
    """Run queued job `job_id` here (a Huey task's body); never raises into the queue."""
    with app.app_context():
        me = store.worker_id()
        if not store.claim(app, job_id, me):
            return  # cancelled, or another worker has it
        with _running_lock:
            _running.add(job_id)
        try:
            _attempt(app, job_id, me)
        finally:
            with _running_lock:
                _running.discard(job_id)


def _attempt(app, job_id, me):
    config = app.config
    job = store.get(app, job_id)
    try:
        result = _cut_all(app, job, me)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the job's reason, never a lost job
        if not store.still_mine(app, job_id, me):
            _abandon(app, job_id)
            return
        if isinstance(exc, APIError):
            code, message = exc.code, message_of(exc)
        else:
            log.exception("job %s failed", job_id)  # the operator's log has the traceback
            code, message = "cutout_failed", _("The cutout failed on the server (%(error)s).",
                                                error=type(exc).__name__)
        job = store.get(app, job_id)
        # A picture the server refuses (4xx) is refused again: no retry. Anything else may pass next time.
        retries = 0 if isinstance(exc, APIError) and exc.status < 500 else int(config["JOB_RETRIES"])
        again = store.give_up_or_retry(app, job, [Job.status == "running", Job.worker == me], code, message,
                                       retries, int(config["JOB_RESULT_SECONDS"]))
        if again:
            _requeue(app, job, delay=retry_delay(job.attempts))
        return
    if result is None:
        _abandon(app, job_id)
        return
    if not store.finish(app, job_id, me, result, int(config["JOB_RESULT_SECONDS"])):
        _abandon(app, job_id)


def _abandon(app, job_id):
    """The job stopped being ours mid-run: if it was cancelled, its files go now."""
    job = store.get(app, job_id)
    if job is not None and job.status == "cancelled":
        files.remove(app, job)


def _requeue(app, job, delay=None):
    """Back on the queue; if the queue cannot take it, the job fails saying so (never stuck queued)."""
    try:
        queue.enqueue(app, job.kind, job.id, delay=delay)
    except queue.QueueUnavailable as exc:
        log.error("%s", exc)
        job = store.get(app, job.id)
        store.give_up_or_retry(app, job, [Job.status == "queued"], "queue_unavailable",
                               _("The job queue could not be reached to run this job again."), -1,
                               int(app.config["JOB_RESULT_SECONDS"]))


def _cut_all(app, job, me):
    """Cut out every picture of `job` not done yet; the result's description, or None if it stopped
    being this worker's job."""
    import json

    from app.inference.decontaminate import decontaminate
    from app.serving import registry
    config = app.config
    options = json.loads(job.options or "{}")
    cutter = registry.get_cutter(options.get("model"))
    if options.get("animation"):  # one animated picture, frame by frame: app/jobs/stickers.py
        from app.jobs import stickers
        return stickers.cut(app, job, me, cutter, options)
    finished = files.sizes(app, job, "out/")
    done = len(finished)
    if not store.progress(app, job.id, me, done, job.pictures):
        return None
    for index in range(job.pictures):
        target = f"out/{picture_name(index)}.png"
        if target in finished:
            continue
        data = files.get(app, job, f"in/{picture_name(index)}")
        if data is None:
            raise FileNotFoundError(f"job {job.id}: picture {index} is missing")
        image = imaging.decode_image(data, int(config["JOB_MAX_BYTES"]), int(config["MAX_IMAGE_PIXELS"]),
                                     max_out_pixels=int(config["MAX_CUTOUT_PIXELS"]))
        settings = {k: options[k] for k in ("alpha", "threshold", "largest_component", "clean")}
        if options["output"] == "mask":
            png = imaging.png_bytes(cutter.mask(image, None, **settings))
        else:
            rgba = cutter.cutout(image, None, **settings)
            if options["decontaminate"]:
                rgba = Image.fromarray(decontaminate(np.asarray(rgba)))
            if options.get("background"):  # laid over a colour: an opaque PNG
                rgba = imaging.flatten(rgba, tuple(options["background"]))
            png = imaging.png_bytes(rgba)
        if not store.still_mine(app, job.id, me):  # cancelled meanwhile: write nothing more
            return None
        files.put(app, job, target, png)
        done += 1
        if not store.progress(app, job.id, me, done, job.pictures):
            return None
    names = options.get("names") or []
    pictures, archive = [], io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:  # PNGs do not compress further
        for index in range(job.pictures):
            png = files.get(app, job, f"out/{picture_name(index)}.png")
            name = f"{picture_name(index)}-{names[index]}.png" if index < len(names) and names[index] \
                else f"{picture_name(index)}.png"
            z.writestr(name, png)
            pictures.append({"index": index, "name": name, "bytes": len(png)})
    files.put(app, job, ZIP_NAME, archive.getvalue())
    files.remove(app, job, "in/")  # the pictures as sent are not kept past the job
    return {"pictures": pictures, "zip_bytes": len(archive.getvalue())}


def reap(app, only=None):
    """Jobs whose worker is gone (all, or job id `only`): queued again while attempts remain, else
    failed with the reason. Returns how many were handled."""
    config = app.config
    handled = 0
    for job in store.lost_jobs(app, float(config["JOB_LEASE_SECONDS"])):
        if only is not None and job.id != only:
            continue
        where = [Job.status == "running", Job.worker == job.worker]
        again = store.give_up_or_retry(app, job, where, "worker_lost",
                                       _("The worker running this job stopped before it finished."),
                                       int(config["JOB_RETRIES"]), int(config["JOB_RESULT_SECONDS"]))
        if again is None:
            continue
        handled += 1
        log.warning("job %s: its worker %s is gone; %s", job.id, job.worker, "queued again" if again else "failed")
        if again:
            _requeue(app, job)
    return handled


def requeue_stranded(app):
    """Queued jobs older than the lease with no message on the queue get one again (the queue lost
    it: Redis restarted without persistence). Claiming is conditional, so a duplicate runs nothing."""
    stranded = store.stranded_jobs(app, float(app.config["JOB_LEASE_SECONDS"]))
    if not stranded:
        return 0
    waiting = queue.waiting_job_ids(app)
    put_back = 0
    for job in stranded:
        if job.id not in waiting and store.touch(app, job.id):
            log.warning("job %s was queued with no message on the queue: queued again", job.id)
            queue.enqueue(app, job.kind, job.id)
            put_back += 1
    return put_back


def sweep(app):
    """Delete the files of jobs past their time."""
    for job in store.expired_jobs(app):
        store.purge(app, job)


def maintain(app, stop, interval):
    """The worker's upkeep loop until `stop` is set: heartbeats, the reaper, stranded jobs, the sweep."""
    me = store.worker_id()
    with app.app_context():
        while not stop.is_set():
            try:
                with _running_lock:
                    mine = set(_running)
                store.heartbeat(app, mine, me)
                reap(app)
                requeue_stranded(app)
                sweep(app)
            except Exception:  # noqa: BLE001 - the database may be away for a while: try again later
                log.exception("job upkeep failed; trying again in %s s", interval)
            stop.wait(interval)
