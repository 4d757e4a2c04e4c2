"""Wrong-label reports: a PNG crop plus a JSON record, each written atomically under a generated id.

Paths are never built from user text: the id is generated here, and labels (any language)
only appear inside the JSON record, or, on export, as a directory name made safe by
`label_dirname`. What a label may hold is app/storage/labels.py's policy.
"""
import datetime
import hashlib
import json
import re
import secrets
import shutil
from pathlib import Path

from app.storage import labels
from app.storage.files import write_atomic

MAX_LABEL_CHARS = labels.MAX_CHARS
ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")


class ReportError(ValueError):
    """A report that cannot be accepted; the message says why."""


def clean_label(text, field="label", allow_empty=False):
    """The label as stored (NFC, spaces trimmed); ReportError if app/storage/labels.py's policy refuses it."""
    try:
        return labels.clean_label(text, field, allow_empty)
    except labels.LabelError as exc:
        raise ReportError(str(exc)) from None


def new_id(now=None):
    """A sortable, unguessable report id: UTC time plus 48 random bits."""
    now = now or datetime.datetime.now(datetime.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"


def save_report(report_dir, png, label, predicted=""):
    """Store one report (PNG bytes of the crop, the right label, the model's label); return its record."""
    label = clean_label(label)
    predicted = clean_label(predicted or "", field="predicted label", allow_empty=True)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    report_id = new_id(now)
    record = {
        "id": report_id,
        "label": label,
        "predicted": predicted,
        "created": now.isoformat(timespec="seconds"),
        "image": f"{report_id}.png",
        "sha256": hashlib.sha256(png).hexdigest(),
    }
    # The image first, the record last: a record on disk always has its complete image.
    write_atomic(report_dir / record["image"], png)
    write_atomic(report_dir / f"{report_id}.json",
                 json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8"))
    return record


def list_reports(report_dir):
    """Every complete report record under report_dir, oldest first."""
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        return []
    records = []
    for path in sorted(report_dir.glob("*.json")):
        if not ID_PATTERN.match(path.stem):
            continue
        try:
            record = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if (report_dir / f"{path.stem}.png").is_file():
            records.append(record)
    return records


def label_dirname(label):
    """A directory name for a label: letters of any script kept, never a path, one per label."""
    return labels.folder_name(label)


def export_reports(report_dir, out_dir, records=None):
    """Copy each report image to out_dir/<label>/<id>.png; yield the destination paths."""
    out_dir = Path(out_dir)
    report_dir = Path(report_dir)
    for record in list_reports(report_dir) if records is None else records:
        target = out_dir / label_dirname(record["label"])
        target.mkdir(parents=True, exist_ok=True)
        dest = target / f"{record['id']}.png"
        shutil.copyfile(report_dir / f"{record['id']}.png", dest)
        yield dest
