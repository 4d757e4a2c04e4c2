"""Wrong-label reports: rows in the database (app/storage/models.Report), pictures as files named
by their sha256 (app/storage/images.py).

Every report is pending until an operator accepts it (it joins the gallery under its label,
or a corrected one) or rejects it. The same picture reported twice is stored once: the second
report answers with the first one's id. Pending reports may hold at most REPORT_QUOTA_BYTES of
pictures; beyond that new reports are refused (507) until an operator reviews the queue.

Report files from before the database (`<id>.json` + `<id>.png` in the report folder) are
imported once by id and left in place. Paths are never built from user text: ids are
generated here, and labels (any language) appear only in rows or, on export, as a folder name
made safe by `label_dirname`. What a label may hold is app/storage/labels.py's policy.
"""
import datetime
import hashlib
import json
import re
import secrets
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.i18n import _, message_of
from app.storage import images, labels, transactions
from app.storage.files import write_atomic
from app.storage.models import Report, iso, utcnow

MAX_LABEL_CHARS = labels.MAX_CHARS
ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
STATUSES = ("pending", "accepted", "rejected")
_SUBMIT_LOCK = 7_140_215  # serialises submit's check-then-insert across workers and instances


class ReportError(ValueError):
    """A report that cannot be accepted; the message says why."""


def clean_label(text, field="label", allow_empty=False):
    """The label as stored (NFC, spaces trimmed); ReportError if app/storage/labels.py's policy refuses it."""
    try:
        return labels.clean_label(text, field, allow_empty)
    except labels.LabelError as exc:
        raise ReportError(message_of(exc)) from None


def new_id(now=None):
    """A sortable, unguessable report id: UTC time plus 48 random bits."""
    now = now or datetime.datetime.now(datetime.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"


class QuotaExceeded(Exception):
    """The pending reports already fill their disk quota."""


class NotFound(LookupError):
    """No report with that id."""


def as_dict(report):
    """The JSON form of a report row."""
    return {"id": report.id, "label": report.label, "predicted": report.predicted,
            "created": iso(report.created),
            "sha256": report.image_sha256, "bytes": report.image_bytes, "status": report.status,
            "decided": iso(report.decided),
            "decided_label": report.decided_label}


def pending_bytes(session):
    """Bytes of pictures held by pending reports."""
    return int(session.scalar(select(func.coalesce(func.sum(Report.image_bytes), 0))
                              .where(Report.status == "pending")))


def submit(session, root, png, label, predicted="", quota_bytes=None):
    """Store a report (PNG bytes of the crop, the right label, the model's label).

    Returns (row, created): created is False when the same picture was already reported.
    Raises ReportError for a bad label, QuotaExceeded when pending reports fill the quota.
    The check and the insert happen under one lock in one transaction (session must be a write
    session), so racing writers store a picture once and never overshoot the quota together;
    the unique index on API reports' pictures stands behind it.
    """
    label = clean_label(label)
    predicted = clean_label(predicted or "", field="predicted label", allow_empty=True)
    sha256 = hashlib.sha256(png).hexdigest()
    transactions.serialise(session, _SUBMIT_LOCK)
    existing = _first_report(session, sha256)
    if existing is not None:
        return existing, False
    if quota_bytes is not None and pending_bytes(session) + len(png) > quota_bytes:
        raise QuotaExceeded(_("The review queue is full (%(limit)d bytes of pending reports): "
                              "new reports are accepted again once an operator reviews it.", limit=quota_bytes))
    images.store(session, root, png)  # first: a row always names a complete picture
    now = utcnow()
    report = Report(id=new_id(now), label=label, predicted=predicted, created=now,
                    image_sha256=sha256, image_bytes=len(png), status="pending", source="api")
    try:
        with session.begin_nested():  # a writer outside the lock (an older instance) got there first
            session.add(report)
    except IntegrityError:
        return _first_report(session, sha256), False
    return report, True


def _first_report(session, sha256):
    return session.scalar(select(Report).where(Report.image_sha256 == sha256)
                          .order_by(Report.created, Report.id).limit(1))


def get(session, report_id):
    """The report with this id; NotFound otherwise."""
    report = session.get(Report, report_id) if isinstance(report_id, str) else None
    if report is None:
        raise NotFound(_("No report %(id)s.", id=repr(report_id)))
    return report


def list_reports(session, status=None, limit=None, offset=0):
    """Report rows, oldest first, optionally of one status."""
    query = select(Report).order_by(Report.created, Report.id)
    if status:
        query = query.where(Report.status == status)
    if limit:
        query = query.limit(limit).offset(offset)
    return list(session.scalars(query))


def count(session, status=None):
    """How many reports (of one status)."""
    query = select(func.count()).select_from(Report)
    if status:
        query = query.where(Report.status == status)
    return int(session.scalar(query))


def decide(session, root, report_id, accept, label=None):
    """Accept (optionally relabelled: the face joins the gallery under that name) or reject a report."""
    from app.storage import gallery
    report = get(session, report_id)
    if report.status != "pending":
        raise ReportError(_("Report %(id)s was already accepted.", id=report_id) if report.status == "accepted"
                          else _("Report %(id)s was already rejected.", id=report_id))
    report.status = "accepted" if accept else "rejected"
    report.decided = utcnow()
    if accept:
        name = clean_label(label) if label else report.label
        report.decided_label = name
        gallery.add_faces(session, name, [report.image_sha256], source="report", report_id=report.id)
    return report


def _legacy_created(record, report_id):
    try:
        return datetime.datetime.fromisoformat(record["created"])
    except (KeyError, TypeError, ValueError):
        return datetime.datetime.strptime(report_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)


def import_report_files(session, report_dir):
    """Import `<id>.json` + `<id>.png` report files not yet in the database (files left in place).

    Returns how many were imported. Records without their picture, unreadable records and
    names that are not report ids are skipped, as the file-based listing always did.
    """
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        return 0
    ids = {p.stem for p in report_dir.glob("*.json") if ID_PATTERN.match(p.stem)}
    if not ids:
        return 0
    known = set(session.scalars(select(Report.id).where(Report.source == "file")))
    imported = 0
    for report_id in sorted(ids - known):
        png_path = report_dir / f"{report_id}.png"
        try:
            record = json.loads((report_dir / f"{report_id}.json").read_text("utf-8"))
            png = png_path.read_bytes()
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or session.get(Report, report_id) is not None:
            continue
        sha256 = images.store(session, report_dir, png)
        session.add(Report(id=report_id, label=str(record.get("label", ""))[:MAX_LABEL_CHARS],
                           predicted=str(record.get("predicted") or "")[:MAX_LABEL_CHARS],
                           created=_legacy_created(record, report_id), image_sha256=sha256,
                           image_bytes=len(png), status="pending", source="file"))
        imported += 1
    return imported


def label_dirname(label):
    """A directory name for a label: letters of any script kept, never a path, one per label."""
    return labels.folder_name(label)


def export_reports(session, root, out_dir, reports):
    """Write each report's picture to out_dir/<label>/<id>.png (accepted ones under their decided label)."""
    out_dir = Path(out_dir)
    for report in reports:
        target = out_dir / label_dirname(report.decided_label or report.label)
        target.mkdir(parents=True, exist_ok=True)
        dest = target / f"{report.id}.png"
        write_atomic(dest, images.read(session, root, report.image_sha256))
        yield dest
