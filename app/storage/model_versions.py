"""Classifier versions trained here, which one is live, and background jobs with their progress.

Retrained model directories live under `<REPORT_DIR>/models/` (rows store the path relative to
the report folder). With PostgreSQL their files are also rows of `model_files` (keep_files), and
an instance that lacks the folder writes it out from them before loading it (local_dir): no
shared disk. Making a version live, or rolling back, is one transaction that also
bumps the "classifier" counter: every worker sees the change on its next request. With no live
row the configured CLASSIFIER_MODEL serves.
"""
import json
from pathlib import Path

from sqlalchemy import select

from app.i18n import _
from app.storage import images, transactions
from app.storage.files import staged_dir
from app.storage.models import Job, ModelFile, ModelVersion, iso, utcnow

COUNTER = "classifier"
TRAINED_DIR = "models"  # under the report folder


class NothingToRollBack(Exception):
    """No retrained version is live."""


def as_dict(version):
    """The JSON form of a model version row."""
    return {"id": version.id, "path": version.path, "status": version.status,
            "created": iso(version.created),
            "metrics": json.loads(version.metrics or "{}"), "note": version.note}


def resolve(root, version):
    """The model directory of a version row (its path is relative to the report folder)."""
    path = Path(version.path)
    return path if path.is_absolute() else Path(root) / path


def keep_files(session, version, folder):
    """With PostgreSQL, the files of `version`'s folder as rows; returns how many (0 with SQLite)."""
    if not images.in_database(session):
        return 0
    paths = sorted(p for p in Path(folder).iterdir() if p.is_file())
    for path in paths:
        session.merge(ModelFile(version_id=version.id, name=path.name, data=path.read_bytes()))
    return len(paths)


def local_dir(session, root, version):
    """The model directory of `version` on this machine: written out from its rows first when it is
    not here (another instance trained it); the card's sha256 check still guards what loads."""
    path = resolve(root, version)
    if (path / "card.json").is_file() or not images.in_database(session):
        return path
    rows = session.scalars(select(ModelFile).where(ModelFile.version_id == version.id)).all()
    if rows:
        try:
            with staged_dir(path) as tmp:
                for row in rows:
                    (tmp / row.name).write_bytes(row.data)
        except OSError:
            if not (path / "card.json").is_file():  # not another thread that got there first
                raise
    return path


def live(session):
    """The live retrained version, or None (the configured model serves)."""
    return session.scalar(select(ModelVersion).where(ModelVersion.status == "live")
                          .order_by(ModelVersion.id.desc()))


def history(session):
    """Every version, newest first."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


def record(session, path, status, metrics=None, note=""):
    """Add a version row (status "live" makes it live at once, superseding the current one)."""
    version = ModelVersion(path=str(path), status="refused" if status == "refused" else "candidate",
                           metrics=json.dumps(metrics or {}), note=note)
    session.add(version)
    session.flush()
    if status == "live":
        make_live(session, version)
    return version


def make_live(session, version):
    """Make `version` the live classifier (the current live one becomes superseded)."""
    current = live(session)
    if current is not None and current.id != version.id:
        current.status = "superseded"
    version.status = "live"
    transactions.bump(session, COUNTER)


def rollback(session):
    """Go back one version: the live one is marked rolled back and the one before it (or the
    configured model) serves again. Returns (rolled back row, now-live row or None)."""
    current = live(session)
    if current is None:
        raise NothingToRollBack(_("No retrained classifier is live: the configured model "
                                  "(FLASK_CLASSIFIER_MODEL) is already serving."))
    current.status = "rolled_back"
    previous = session.scalar(select(ModelVersion)
                              .where(ModelVersion.status == "superseded", ModelVersion.id < current.id)
                              .order_by(ModelVersion.id.desc()))
    if previous is not None:
        previous.status = "live"
    transactions.bump(session, COUNTER)
    return current, previous


# --- background jobs -----------------------------------------------------------------------------

def job_dict(job):
    """The JSON form of a job row."""
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": round(job.progress, 4),
            "message": job.message, "result": json.loads(job.result or "{}"),
            "created": iso(job.created),
            "updated": iso(job.updated)}


def latest_job(session, kind):
    """The newest queued or running job row of `kind`, or None."""
    return session.scalar(select(Job).where(Job.kind == kind, Job.status.in_(("queued", "running")))
                          .order_by(Job.id.desc()))


def fail_dead_jobs(session, kind, up_to_id):
    """Mark running jobs of `kind` (ids up to `up_to_id`) failed: their process is gone. (A queued job
    waits on the job queue, app/jobs/, and holds no lock yet.)

    Call it only after seeing the job's lock free (app/storage/job_lock.py) *after* reading those
    rows: a job started since then has a larger id and is left alone."""
    for dead in session.scalars(select(Job).where(Job.kind == kind, Job.id <= up_to_id,
                                                  Job.status == "running")):
        dead.status, dead.message = "failed", "The job's process died before it finished."
        dead.updated = utcnow()


def create_job(session, kind):
    """A new queued job row."""
    job = Job(kind=kind, status="queued", message="Waiting to start.")
    session.add(job)
    session.flush()
    return job


def update_job(session, job_id, **fields):
    """Set fields of a job (status, progress, message, result as a dict) and its update time."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    if "result" in fields:
        fields["result"] = json.dumps(fields["result"], ensure_ascii=False)
    for key, value in fields.items():
        setattr(job, key, value)
    job.updated = utcnow()
    return job
