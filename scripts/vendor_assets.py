"""Put the browser's third-party files into static/vendor/ (git-ignored).

- lbpcascade_animeface.xml: copied from ../shared/third_party when present, else
  downloaded from its upstream repository (or $CASCADE_URL); its sha256 is checked either way.
- npm packages from package.json + package-lock.json (`npm ci` when node_modules does not match
  the lock; with --dev its dev packages too), copied out of node_modules. The Live2D models (dev
  dependencies) stay in node_modules for the demo renderer (app/demo_data/live2d).
- a gzip copy beside each (NAME.gz), which app/web/static_files.py sends to browsers that take
  gzip: opencv.js goes from 10.9 MB to about 3.5 MB on the wire.
"""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"

CASCADE_NAME = "lbpcascade_animeface.xml"
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
# CASCADE_URL in the environment names a mirror (the Docker check serves one on loopback).
CASCADE_URL = os.environ.get("CASCADE_URL") or (
    "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/lbpcascade_animeface.xml")
CASCADE_LOCAL = ROOT.parent / "shared" / "third_party" / "lbpcascade_animeface" / CASCADE_NAME

# (file inside node_modules, name under static/vendor)
NPM_FILES = [
    ("@techstark/opencv-js/dist/opencv.js", "opencv.js"),  # Apache-2.0, WASM inlined
]


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def install_checked(write_source, dest, sha256):
    """Write via write_source(tmp_path) into a temp file beside dest; rename only if sha256 matches."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    os.close(fd)
    try:
        write_source(tmp)
        got = sha256_of(tmp)
        if got != sha256:
            raise SystemExit(f"{dest.name}: sha256 {got} does not match {sha256}; not installed")
        # mkstemp makes the file 0600: the server (uid 10001 in the image) must read it.
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def vendor_cascade():
    dest = VENDOR / CASCADE_NAME
    if dest.exists() and sha256_of(dest) == CASCADE_SHA256:
        print(f"{CASCADE_NAME}: present, checksum ok")
        return
    if CASCADE_LOCAL.exists():
        print(f"{CASCADE_NAME}: copying from {CASCADE_LOCAL}")
        install_checked(lambda tmp: shutil.copyfile(CASCADE_LOCAL, tmp), dest, CASCADE_SHA256)
    else:
        print(f"{CASCADE_NAME}: downloading from {CASCADE_URL}")
        try:
            install_checked(lambda tmp: urllib.request.urlretrieve(CASCADE_URL, tmp), dest, CASCADE_SHA256)
        except OSError as exc:
            if os.environ.get("VENDOR_STRICT") == "1":  # image builds fail loudly instead
                raise SystemExit(f"could not get {CASCADE_NAME}: {exc}") from None
            # The app still runs without it: automatic detection is off, hand-drawn boxes work.
            print(f"warning: could not get {CASCADE_NAME} ({exc}); face detection stays off",
                  file=sys.stderr)


def npm_installed_matches_lock(dev):
    """True when the lock's packages (dev ones only if `dev`) are in node_modules at their versions."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    for path, entry in lock.get("packages", {}).items():
        if not path or entry.get("link") or (entry.get("dev") and not dev):
            continue
        manifest = ROOT / path / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text()).get("version") != entry.get("version"):
            return False
    return True


def vendor_npm(dev=False):
    if not NPM_FILES:
        return
    # Also after a pull that added packages; with --dev, also the dev ones (the Live2D models
    # that app/demo_data/live2d renders), which an image built with `npm ci --omit=dev` lacks.
    if not npm_installed_matches_lock(dev) or os.environ.get("NPM_REINSTALL"):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
    for src, name in NPM_FILES:
        shutil.copyfile(ROOT / "node_modules" / src, VENDOR / name)
        print(f"{name}: copied from node_modules/{src}")


def precompress(name):
    """Write static/vendor/NAME.gz (best compression, no timestamp: the same input gives the same bytes)."""
    src = VENDOR / name
    dest = VENDOR / (name + ".gz")
    if not src.is_file():
        return
    if dest.is_file() and dest.stat().st_mtime >= src.stat().st_mtime:
        print(f"{dest.name}: present")
        return
    fd, tmp = tempfile.mkstemp(dir=VENDOR, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as raw, open(src, "rb") as f:
            with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as gz:
                shutil.copyfileobj(f, gz, 1 << 20)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"{dest.name}: {src.stat().st_size} -> {dest.stat().st_size} bytes")


def main():
    VENDOR.mkdir(parents=True, exist_ok=True)
    vendor_cascade()
    vendor_npm(dev="--dev" in sys.argv[1:])
    for name in [CASCADE_NAME] + [name for _, name in NPM_FILES]:
        precompress(name)


if __name__ == "__main__":
    main()
