"""`flask train classifier --from-gallery`: retrain the head on the gallery plus the existing data,
and make it live only if the gate (app/training/retrain.py) lets it through.

Run by an operator from a shell, or as the background job the review page starts (`--job ID`:
progress, the verdict and any failure go to that job's row, which the page polls).
"""
import contextlib
import datetime
import os
import secrets
import time
from pathlib import Path

from app.config import ROOT, model_path, resolve_path
from app.storage import db, gallery, images, job_lock, model_versions
from app.storage.model_dirs import load_card

# Share of the job's progress bar each stage of train_model_dir fills: (start, end).
STAGES = {"features": (0.05, 0.6), "epochs": (0.6, 0.85), "held-out test": (0.85, 0.95)}


class JobReporter:
    """Progress and status of one job row (or nothing, from a shell without --job)."""

    def __init__(self, app, job_id, log):
        self.app, self.job_id, self.log = app, job_id, log
        self.last = 0.0

    def update(self, force=True, **fields):
        """Write fields to the job row (progress writes at most once a second unless forced)."""
        if self.job_id is None:
            return
        now = time.monotonic()
        if not force and now - self.last < 1.0:
            return
        self.last = now
        with db.session(self.app, write=True) as s:
            model_versions.update_job(s, self.job_id, **fields)

    @contextlib.contextmanager
    def bar(self, length, label):
        """A progress_factory for train_model_dir: maps a stage's count onto the job's 0-1."""
        start, end = STAGES.get(label, (0.0, 0.0))
        done = [0]
        self.update(message=f"{label}…", progress=start)

        class Bar:
            def update(inner, n):
                done[0] += n
                share = min(1.0, done[0] / max(1, length))
                self.update(force=False, progress=start + (end - start) * share,
                            message=f"{label}: {done[0]} of {length}")
        yield Bar()


def _relative(root, path):
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def base_data_dir(app, live_card, data_dir=None):
    """The existing data set: given, configured (RETRAIN_DATA_DIR), or the one the live head trained on."""
    chosen = data_dir or app.config.get("RETRAIN_DATA_DIR") or (live_card.get("training") or {}).get("data")
    if not chosen:
        raise ValueError("No existing data set to retrain on: pass DATA_DIR or set FLASK_RETRAIN_DATA_DIR")
    path = Path(chosen) if Path(chosen).is_absolute() else ROOT / chosen
    if not (path / "test").is_dir():
        raise ValueError(f"{path} has no test/ split: retraining needs held-out faces to compare the new "
                         f"head with the live one (build one with `flask --app wsgi dataset demo-faces {chosen}`)")
    return path


def new_version_dir(root):
    """A new, empty folder for a retrained version under `root`/models, never shared with another job:
    the second and random bits name it, and creating it claims it."""
    parent = Path(root) / model_versions.TRAINED_DIR
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = parent / f"classifier-{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def run(app, data_dir=None, job_id=None, out_dir=None, tolerance=None, options=None, command=None, log=print):
    """Retrain, gate, record the version (live or refused); returns the verdict as a dict.

    Holds the retrain lock (app/storage/job_lock.py) for its whole run: job_lock.Busy when another
    live process retrains, whether started from the page or a shell."""
    root = resolve_path(app.config["REPORT_DIR"])
    try:
        lock_fd = job_lock.hold(root, "retrain")
    except job_lock.Busy:
        raise job_lock.Busy(f"A retraining job is already running (process "
                            f"{job_lock.holder_pid(root, 'retrain') or '?'}): wait for it to end.") from None
    try:
        return _run(app, root, data_dir, job_id, out_dir, tolerance, options, command, log)
    finally:
        os.close(lock_fd)


def _run(app, root, data_dir, job_id, out_dir, tolerance, options, command, log):
    from app.inference.identify import Identifier
    from app.training import classifier_eval, retrain
    from app.training.classifier_train import TrainConfig, train_model_dir
    from app.training.face_dataset import load_folder

    tolerance = retrain.DEFAULT_TOLERANCE if tolerance is None else tolerance
    reporter = JobReporter(app, job_id, log)
    reporter.update(status="running", progress=0.01, message="Reading the gallery")
    with db.session(app) as s:
        live_row = model_versions.live(s)
        faces = gallery.training_faces(s)
        live_dir = (model_versions.local_dir(s, root, live_row) if live_row
                    else model_path(app.config, "CLASSIFIER_MODEL"))
    live_card = load_card(live_dir)
    data = base_data_dir(app, live_card, data_dir)
    pictures = []
    with db.session(app) as s:
        for name, sha256 in faces:
            try:
                pictures.append((name, sha256, retrain.load_picture(images.read(s, root, sha256))))
            except (OSError, ValueError):
                log(f"skipped enrolled face {sha256[:12]} of {name}: its picture is missing or unreadable")
    extra = retrain.gallery_split(pictures)
    log(f"gallery: {len(extra['train'])} training and {len(extra['val'])} validation faces of "
        f"{len({n for n, _, _ in pictures})} character(s); existing data: {data}")
    known = {f.name for f in TrainConfig.__dataclass_fields__.values()}
    settings = {k: v for k, v in ((live_card.get("training") or {}).get("config") or {}).items() if k in known}
    settings.update({k: v for k, v in (options or {}).items() if v is not None})
    # Features are cached in the data folder: the app's own folder may be read-only (Docker).
    settings["cache_root"] = settings.get("cache_root") or str(root / "cache" / "features")
    config = TrainConfig(**settings)
    out_dir = Path(out_dir) if out_dir else new_version_dir(root)
    card = train_model_dir(data, out_dir, config, name=out_dir.name, command=command,
                           progress_factory=reporter.bar, log=log, extra=extra)
    reporter.update(progress=0.95, message="Scoring the live model on the same held-out faces")
    live_metrics = classifier_eval.evaluate_items(Identifier.load(live_dir), load_folder(data / "test"))
    verdict = retrain.compare(live_metrics, card["metrics"], tolerance)
    result = {**verdict.as_dict(), "model_dir": _relative(root, out_dir), "live_dir": str(live_dir),
              "gallery_faces": {"train": len(extra["train"]), "val": len(extra["val"])}}
    with db.session(app, write=True) as s:
        version = model_versions.record(s, _relative(root, out_dir), "live" if verdict.accepted else "refused",
                                        result, verdict.reason)
        model_versions.keep_files(s, version, out_dir)  # PostgreSQL: every instance can load it
        result["version"] = version.id
    reporter.update(status="done" if verdict.accepted else "refused", progress=1.0,
                    message=verdict.reason + (f" Version {result['version']} is live." if verdict.accepted else ""),
                    result=result)
    return result


def fail_job(app, job_id, exc):
    """Record a failed job (the message, never a traceback)."""
    if job_id is not None:
        with db.session(app, write=True) as s:
            model_versions.update_job(s, job_id, status="failed", message=f"Retraining failed: {exc}")
