"""The browser's third-party files (static/vendor) under versioned URLs, cached for a year and
sent pre-compressed: /vendor/<digest>/opencv.js is 10.9 MB as built, about 3.5 MB gzipped.

The digest is the start of the file's sha256, so a new build gets a new URL and a cached copy is
never stale. scripts/vendor_assets.py writes the .gz beside each large file at setup.
"""
import hashlib
from pathlib import Path

from flask import Blueprint, abort, request, send_file, url_for

bp = Blueprint("static_files", __name__)

STATIC = Path(__file__).resolve().parent.parent.parent / "static"
VENDOR = STATIC / "vendor"
# A worker runs under the policy sent with its own script, not the page's: the detector's worker
# loads opencv.js (eval for embind, WebAssembly) and fetches the cascade and the inlined WASM.
WORKER_CSP = ("default-src 'none'; script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'; "
              "connect-src 'self' data:")
YEAR = 365 * 24 * 3600
TYPES = {".js": "text/javascript", ".xml": "application/xml", ".webp": "image/webp"}
_digests = {}  # (name, size, mtime) -> sha256 prefix


def _digest(path):
    stat = path.stat()
    key = (path.name, stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _digests[key] = h.hexdigest()[:16]
    return _digests[key]


def vendor_asset(name):
    """{"url", "size"} of static/vendor/<name>: its versioned URL and its size in bytes (0 if absent)."""
    path = VENDOR / name
    if not path.is_file():
        # Still a URL (it answers 404), so the page can say the file is not installed.
        return {"url": url_for("static_files.vendor", digest="missing", name=name), "size": 0}
    return {"url": url_for("static_files.vendor", digest=_digest(path), name=name), "size": path.stat().st_size}


@bp.app_context_processor
def _template_helpers():
    return {"vendor_asset": vendor_asset}


@bp.get("/workers/<name>")
def worker(name):
    """A Web Worker's script (static/js/NAME, named *-worker.js) with the policy it runs under."""
    if not name.endswith("-worker.js") or "/" in name or name.startswith("."):
        abort(404)
    path = STATIC / "js" / name
    if not path.is_file():
        abort(404)
    response = send_file(path, mimetype="text/javascript", max_age=0, conditional=True, etag=True)
    response.headers["Content-Security-Policy"] = WORKER_CSP
    return response


@bp.get("/vendor/<digest>/<name>")
def vendor(digest, name):
    """A vendor file, immutable under its digest; the gzip copy when the client takes gzip."""
    if "/" in name or name.startswith(".") or name.endswith(".gz"):
        abort(404)
    path = VENDOR / name
    if not path.is_file() or digest != _digest(path):
        abort(404)
    gz = path.with_name(path.name + ".gz")
    use_gz = gz.is_file() and "gzip" in request.accept_encodings
    response = send_file(gz if use_gz else path, mimetype=TYPES.get(path.suffix, "application/octet-stream"),
                         max_age=YEAR, conditional=True, etag=True)
    if use_gz:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response
