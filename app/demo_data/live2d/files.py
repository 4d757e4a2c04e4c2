"""Atomic writes: a render or its metadata is on disk whole or not at all."""
import json
import os
import tempfile
from pathlib import Path

from PIL import Image


def _write_atomic(path, write):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_png(path, rgba):
    """Write an H x W x 4 uint8 array as an RGBA PNG."""
    _write_atomic(path, lambda f: Image.fromarray(rgba, "RGBA").save(f, format="PNG"))


def write_json(path, data):
    _write_atomic(path, lambda f: f.write((json.dumps(data, indent=1) + "\n").encode("utf-8")))
