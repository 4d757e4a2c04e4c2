"""Pictures named by their sha256: rows of `pictures` when the database is PostgreSQL (every app
instance reads them, no shared disk), else files `<REPORT_DIR>/images/<first two hex>/<sha256>.png`.

The database rows of reports and enrolled faces hold only the hash. A picture is stored before
(or, as a row, in the same transaction as) any row that names it, and the same bytes are stored
once however often they arrive.
"""
import hashlib
import re
from pathlib import Path

from sqlalchemy.dialects.postgresql import insert

from app.storage.files import write_atomic
from app.storage.models import Picture

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def in_database(session):
    """True when pictures are rows (PostgreSQL), False when they are files (SQLite)."""
    return session.get_bind().dialect.name == "postgresql"


def image_path(root, sha256):
    """Where the picture with this sha256 lives under `root` (the report folder) as a file."""
    if not SHA256.match(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return Path(root) / "images" / sha256[:2] / f"{sha256}.png"


def store(session, root, png):
    """Keep PNG bytes under their sha256 unless already kept; return the sha256."""
    sha256 = hashlib.sha256(png).hexdigest()
    if in_database(session):
        # Writers racing with the same picture: one row, no error (the transaction decides).
        session.execute(insert(Picture).values(sha256=sha256, data=png).on_conflict_do_nothing())
        return sha256
    path = image_path(root, sha256)
    if not path.is_file() or path.stat().st_size != len(png):
        write_atomic(path, png)
    return sha256


def read(session, root, sha256):
    """The bytes of a stored picture (FileNotFoundError if it is missing)."""
    if in_database(session):
        data = session.get(Picture, sha256)
        if data is None:
            raise FileNotFoundError(f"no picture {sha256} in the database")
        return data.data
    return image_path(root, sha256).read_bytes()


def files(root):
    """(sha256, path) of every picture file under `root` (what `flask storage move` copies)."""
    folder = Path(root) / "images"
    return sorted((p.stem, p) for p in folder.glob("??/*.png") if SHA256.match(p.stem)) if folder.is_dir() else []
