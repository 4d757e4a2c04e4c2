"""Files written whole or not at all, and file hashes: the one place that does either.

Every writer goes through `atomic_path`: a temporary name in the target's own folder (so the
final rename stays on one file system), fsync of the data, rename, fsync of the folder. A crash
at any point leaves the old file or the new one, never half of one; a failed write removes its
temporary file.
"""
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

TMP_PREFIX = ".tmp-"


def sha256_file(path, chunk=1 << 20):
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path):
    """fsync a file by path: its bytes are on disk when this returns (OSError if not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    """fsync a folder so a rename in it is durable; file systems that refuse it are skipped."""
    try:
        fsync_file(path)
    except OSError:
        pass


@contextlib.contextmanager
def atomic_path(path, mode=0o644):
    """Yield a temporary path beside `path`; when the block ends without error it becomes `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        fsync_file(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_atomic(path, data, mode=0o644):
    """Write bytes (or text, as UTF-8) to `path` atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def write_json(path, data):
    """Write JSON (indented, Unicode kept) to `path` atomically."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def replace_dir(staged, target):
    """Put a fully written folder in place of `target` (same file system), the old one removed after."""
    staged, target = Path(staged), Path(target)
    old = None
    if target.exists():
        # rename() cannot replace a non-empty folder: move the old one aside first.
        old = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}.old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
    os.rename(staged, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(target, replace=True):
    """Yield an empty folder beside `target` that takes its place when the block succeeds.

    With replace=False an existing non-empty `target` is never overwritten (FileExistsError).
    A failed block removes the folder, so nothing half-written is left at `target`.
    """
    target = Path(target)
    if not replace and target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty: choose a new folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}.", dir=target.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; models and data are read by other users
    try:
        yield staging
        replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_stale_temp(folder, max_age_s=60.0, depth=0):
    """Remove TMP_PREFIX files and folders older than max_age_s in `folder` (and `depth` levels below).

    What a killed writer left behind: a live write touches its temporary file as it goes, and no
    write here takes a minute, so an older one has no owner. Returns the paths removed."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            if entry.name.startswith(TMP_PREFIX):
                if now - entry.stat(follow_symlinks=False).st_mtime > max_age_s:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    removed.append(Path(entry.path))
            elif depth > 0 and entry.is_dir(follow_symlinks=False):
                removed += remove_stale_temp(entry.path, max_age_s, depth - 1)
        except OSError:
            continue  # gone meanwhile, or not ours to remove: never stop a start for it
    return removed
