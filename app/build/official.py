"""Official weights (Inception-v3, U-2-Net), fetched and verified: the library behind `flask models`.

A download streams into a temporary file beside the target, hashing as it goes; only a
file whose size and sha256 match the manifest (and whose tensors load `strict=True` into
our network) is renamed into place. Anything else is deleted and the command exits
non-zero with a message that says what went wrong.

Where a trustworthy sha256 is not published (U-2-Net's files are shared from Google Drive
without checksums), the manifest says `"sha256": null` and the command refuses unless the
operator passes `--sha256 HEX` (pin a hash they trust) or `--allow-unverified` (accept it on
the strength of the strict state-dict load alone, and print the sha256 so it can be pinned).
"""
import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import torch

from app import nets
from app.build.torch_cutout import cutout_card
from app.config import OFFICIAL_DIR
from app.storage.files import atomic_path, sha256_file
from app.storage.model_dirs import write_card

CHUNK = 1 << 16
TIMEOUT_S = 60

# URL, size in bytes and sha256 of each official file. `null` = not published anywhere we
# could verify; see the module docstring and the `note` of each entry.
MANIFEST = {
    "inception_v3": {
        "filename": "inception_v3_google-0cc3c7bd.pth",
        "url": "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        "size": None,
        "sha256": "0cc3c7bd75056d25e46cba549dc184522069b81e9787eff6df84f397bd52a5ef",
        "architecture": "inception_v3",
        "license": "BSD-3-Clause (torchvision); weights ported from TensorFlow (Apache-2.0)",
        "note": "torchvision names files by the first 8 hex digits of their sha256 (0cc3c7bd); the "
                "full digest is as recorded by a third-party project, consistent with that prefix. "
                "Exact byte size not pinned (about 104 MiB).",
    },
    "u2net": {
        "filename": "u2net/u2net.pth",  # a model directory: CUTOUT_MODEL=models/official/u2net
        "url": "https://drive.usercontent.google.com/download?id=1ao1ovG1Qtx4b7EoskHXmi2E9rp5CHLcZ"
               "&export=download&confirm=t",
        "size": None,
        "sha256": None,
        "architecture": "u2net",
        "license": "Apache-2.0 (xuebinqin/U-2-Net)",
        "note": "Official Google Drive file from the U-2-Net README (176.3 MB). No sha256 is "
                "published; third-party projects quote conflicting md5 digests for it.",
    },
    "u2netp": {
        "filename": "u2netp/u2netp.pth",
        "url": "https://drive.usercontent.google.com/download?id=1rbSTGKAE-MTxBYHd-51l2hMOQPT_7EPy"
               "&export=download&confirm=t",
        "size": None,
        "sha256": None,
        "architecture": "u2netp",
        "license": "Apache-2.0 (xuebinqin/U-2-Net)",
        "note": "Official Google Drive file from the U-2-Net README (4.7 MB). No sha256 is "
                "published; third-party projects quote md5 e4f636406ca4e2af789941e7f139ee2e.",
    },
}


class DownloadError(Exception):
    """A download that failed or did not verify; nothing was left on disk."""


def check_loads(path, architecture):
    """Raise DownloadError unless `path` holds a state dict that loads strict=True into `architecture`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        nets.build(architecture).load_state_dict(state, strict=True)
    except Exception as exc:
        raise DownloadError(f"the file is not a {architecture} state dict ({str(exc)[:200]})") from None


def download(entry, dest_dir, *, url=None, sha256=None, allow_unverified=False, progress=None):
    """Fetch one manifest entry into `dest_dir` atomically; returns (path, sha256). Raises DownloadError.

    `progress(received_bytes, total_or_None)` is called as blocks arrive.
    """
    url = url or entry["url"]
    expected_sha = (sha256 or entry.get("sha256") or "").lower() or None
    if expected_sha is None and not allow_unverified:
        raise DownloadError(f"no sha256 is known for {entry['filename']}: pass --sha256 HEX with a "
                            f"digest you trust, or --allow-unverified to accept a file that loads "
                            f"into the network (its sha256 will be printed so you can pin it)")
    target = Path(dest_dir) / entry["filename"]
    made = not target.parent.exists()
    try:
        with atomic_path(target) as tmp:
            digest, received, announced = hashlib.sha256(), 0, None
            request = urllib.request.Request(url, headers={"User-Agent": "anime-face-app/1"})
            try:
                with open(tmp, "wb") as out, urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
                    announced = resp.headers.get("Content-Length")
                    announced = int(announced) if announced and announced.isdigit() else None
                    while block := resp.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        if progress:
                            progress(received, announced or entry.get("size"))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise DownloadError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from None
            if announced is not None and received != announced:
                raise DownloadError(f"truncated download: got {received} of {announced} bytes from {url}")
            if entry.get("size") and received != entry["size"]:
                raise DownloadError(f"size mismatch: got {received} bytes, the manifest says {entry['size']}")
            actual = digest.hexdigest()
            if expected_sha and actual != expected_sha:
                raise DownloadError(f"sha256 mismatch for {entry['filename']}: got {actual}, "
                                    f"expected {expected_sha}")
            if entry.get("architecture"):
                check_loads(tmp, entry["architecture"])
        return target, actual
    except BaseException:
        if made and target.parent.is_dir() and not any(target.parent.iterdir()):
            target.parent.rmdir()
        raise


def serves_cutout(entry):
    """Whether a manifest entry is a cutout network (its folder becomes a model directory)."""
    arch = nets.ARCHITECTURES.get(entry.get("architecture"))
    return arch is not None and arch.kind == "cutout"


def write_cutout_card(name, entry, path, digest, url, verified):
    """Make the folder of a downloaded U-2-Net file a model directory that /api/cutout can serve."""
    card = cutout_card(
        name, entry["architecture"], 320, version="official",
        training={"data": "DUTS-TR, general salient objects (the official U-2-Net release)",
                  "command": f"flask --app wsgi models download {name}"
                             + ("" if verified else f" --sha256 {digest}")},
        source={"url": url, "license": entry.get("license"), "sha256_published": verified,
                "note": entry.get("note")})
    card.update(weights=Path(path).name, sha256=digest)
    write_card(Path(path).parent, card)
    return card


def official_status(dest_dir=OFFICIAL_DIR, manifest=MANIFEST):
    """[(name, path, status)] for the manifest's files: missing, verified, MISMATCH or unverified."""
    rows = []
    for name, entry in manifest.items():
        path = Path(dest_dir) / entry["filename"]
        if not path.is_file():
            status = "missing"
        elif entry.get("sha256"):
            status = "verified" if sha256_file(path) == entry["sha256"] else "MISMATCH"
        else:
            status = "present, no published sha256"
        rows.append((name, path, status))
    return rows
