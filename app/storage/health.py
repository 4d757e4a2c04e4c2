"""What /healthz says about storage: the database reachable, and free space under the report folder."""
import logging
import shutil

from app.config import resolve_path
from app.i18n import _

log = logging.getLogger(__name__)


def database_state(app):
    """{"ok", "backend"}: whether the database answers now (bounded by DATABASE_TIMEOUT)."""
    from app.storage import db
    backend = "postgresql" if app.config.get("DATABASE_URL") else "sqlite"
    try:
        db.ping(app)
    except Exception as exc:  # noqa: BLE001 - any failure is the answer; the log keeps the details
        log.warning("health check: the database cannot be reached: %s", exc)
        return {"ok": False, "backend": backend}
    return {"ok": True, "backend": backend}


def disk_state(app):
    """{"ok", "free_bytes", "min_free_bytes"} for the file system holding the report folder."""
    folder = resolve_path(app.config["REPORT_DIR"])
    minimum = int(app.config.get("MIN_FREE_BYTES") or 0)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # not created yet: the disk it will be on
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        log.warning("health check: cannot read free space under %s: %s", folder, exc)
        return {"ok": False, "free_bytes": None, "min_free_bytes": minimum}
    return {"ok": free >= minimum, "free_bytes": free, "min_free_bytes": minimum}


def reasons(storage, disk):
    """Why storage is degraded, as Messages (empty when it is not)."""
    found = []
    if not storage["ok"]:
        found.append(_("The database cannot be reached: reports, characters and operator actions "
                       "answer 503 until it is back."))
    if not disk["ok"]:
        found.append(_("The disk of the report folder is low: %(free)s bytes free, below MIN_FREE_BYTES "
                       "(%(minimum)d).", free=str(disk["free_bytes"]), minimum=disk["min_free_bytes"]))
    return found
