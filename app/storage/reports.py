"""Wrong-label reports: a PNG crop plus a JSON record, each written atomically under a generated id.

Paths are never built from user text: the id is generated here, and labels (any language)
only appear inside the JSON record, or, on export, as a directory name made safe by
`label_dirname`.
"""
import datetime
import hashlib
import json
import re
import secrets
import shutil
import unicodedata
from pathlib import Path

from app.storage.files import write_atomic

MAX_LABEL_CHARS = 100
ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
# Characters that cannot appear in a directory name on common file systems.
UNSAFE_NAME_CHARS = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10))}


class ReportError(ValueError):
    """A report that cannot be accepted; the message says why."""


def clean_label(text, field="label", allow_empty=False):
    """NFC-normalised, trimmed label; ReportError if empty, too long or with control characters."""
    if not isinstance(text, str):
        raise ReportError(f"The {field} must be text.")
    label = unicodedata.normalize("NFC", text).strip()
    if not label:
        if allow_empty:
            return ""
        raise ReportError(f"The {field} is empty.")
    if len(label) > MAX_LABEL_CHARS:
        raise ReportError(f"The {field} is longer than {MAX_LABEL_CHARS} characters.")
    # Category C*: control, format (bidi overrides), unassigned, private use, surrogates.
    if any(unicodedata.category(ch).startswith("C") for ch in label):
        raise ReportError(f"The {field} contains control or invisible characters.")
    return label


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
    """A directory name for a label that keeps its letters (any script) and cannot escape DIR."""
    name = UNSAFE_NAME_CHARS.sub("_", unicodedata.normalize("NFC", label)).strip(" .")
    if name.split(".")[0].upper() in WINDOWS_RESERVED:
        name = "_" + name
    # Leave room under NAME_MAX (255 bytes) for multi-byte scripts.
    while len(name.encode("utf-8")) > 200:
        name = name[:-1]
    return name or "_"


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
