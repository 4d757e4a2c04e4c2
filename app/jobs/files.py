"""Where a batch job's pictures and results live: files under `<REPORT_DIR>/jobs/batch/<key>/` with
SQLite (one machine), rows of `job_files` with PostgreSQL, so that every app instance and worker
reaches them with no shared disk. Names are `in/NNNN` (a picture as sent) and `out/NNNN.png`.
Sizes are capped where they enter: JOB_MAX_BYTES for a job's pictures, MAX_CUTOUT_PIXELS for each
result (and JOB_MAX_PICTURES of them).
"""
import shutil

from sqlalchemy import delete, func, select

from app.config import resolve_path
from app.storage import db
from app.storage.files import write_atomic
from app.storage.models import JobFile


def in_database(app):
    """True when the job files are rows (PostgreSQL), False when they are files (SQLite)."""
    return db.get_engine(app).dialect.name == "postgresql"


def folder(app, key):
    """The folder of job `key`'s files (SQLite)."""
    return resolve_path(app.config["REPORT_DIR"]) / "jobs" / "batch" / key


def put(app, job, name, data):
    """Store `data` as `name` of `job` (whole or not at all)."""
    if in_database(app):
        with db.session(app, write=True) as s:
            s.merge(JobFile(job_id=job.id, name=name, data=data))
    else:
        path = folder(app, job.key) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)


def get(app, job, name):
    """The bytes of `name` of `job`, or None."""
    if in_database(app):
        with db.session(app) as s:
            return s.scalar(select(JobFile.data).where(JobFile.job_id == job.id, JobFile.name == name))
    path = folder(app, job.key) / name
    return path.read_bytes() if path.is_file() else None


def sizes(app, job, prefix):
    """{name: bytes} of `job`'s files whose names start with `prefix`."""
    if in_database(app):
        with db.session(app) as s:
            rows = s.execute(select(JobFile.name, func.length(JobFile.data)).where(
                JobFile.job_id == job.id, JobFile.name.startswith(prefix)))
            return dict(rows.all())
    root = folder(app, job.key)
    base = root / prefix.rsplit("/", 1)[0] if "/" in prefix else root
    if not base.is_dir():
        return {}
    return {str(p.relative_to(root)): p.stat().st_size for p in base.iterdir()
            if str(p.relative_to(root)).startswith(prefix) and p.is_file()}


def remove(app, job, prefix=""):
    """Delete `job`'s files whose names start with `prefix` (all of them by default)."""
    if in_database(app):
        with db.session(app, write=True) as s:
            s.execute(delete(JobFile).where(JobFile.job_id == job.id, JobFile.name.startswith(prefix)))
        return
    root = folder(app, job.key)
    shutil.rmtree(root / prefix.rstrip("/") if prefix else root, ignore_errors=True)


def exists(app, job):
    """True while any file of `job` is kept."""
    if in_database(app):
        with db.session(app) as s:
            return s.scalar(select(func.count()).select_from(JobFile).where(JobFile.job_id == job.id)) > 0
    return folder(app, job.key).exists()
