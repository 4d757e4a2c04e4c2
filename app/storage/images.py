"""Picture files named by their sha256: `<REPORT_DIR>/images/<first two hex>/<sha256>.png`.

The database rows of reports and enrolled faces hold only the hash. A file is written whole
(app/storage/files.py) before any row names it, and the same bytes are stored once however
often they arrive.
"""
import hashlib
import re
from pathlib import Path

from app.storage.files import write_atomic

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def image_path(root, sha256):
    """Where the picture with this sha256 lives under `root` (the report folder)."""
    if not SHA256.match(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return Path(root) / "images" / sha256[:2] / f"{sha256}.png"


def store(root, png):
    """Write PNG bytes under their sha256 unless already there; return (sha256, path)."""
    sha256 = hashlib.sha256(png).hexdigest()
    path = image_path(root, sha256)
    if not path.is_file() or path.stat().st_size != len(png):
        write_atomic(path, png)
    return sha256, path


def read(root, sha256):
    """The bytes of a stored picture (FileNotFoundError if it is missing)."""
    return image_path(root, sha256).read_bytes()
