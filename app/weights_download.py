"""`flask models download NAME` and `flask models list`: official weights, fetched and verified.

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
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import click
import torch
from flask import current_app

from app.backbones import OFFICIAL_DIR, ROOT
from app.cli import models_cli
from app.cutout import MEAN, STD
from app.model_store import (ModelError, list_model_dirs, load_card, sha256_file, verify_weights,
                             write_card)
from app.nets.u2net import ARCHITECTURES as CUTOUT_ARCHITECTURES

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


def _network(architecture):
    if architecture == "inception_v3":
        from app.nets.inception import Inception3
        return Inception3()
    if architecture == "efficientnet_lite0":
        from app.nets.efficientnet_lite import EfficientNetLite0
        return EfficientNetLite0()
    if architecture in ("u2net", "u2netp"):
        from app.nets.u2net import U2NET, U2NETP
        return U2NET() if architecture == "u2net" else U2NETP()
    raise DownloadError(f"unknown architecture {architecture!r} in the manifest")


def check_loads(path, architecture):
    """Raise DownloadError unless `path` holds a state dict that loads strict=True into `architecture`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        _network(architecture).load_state_dict(state, strict=True)
    except DownloadError:
        raise
    except Exception as exc:
        raise DownloadError(f"the file is not a {architecture} state dict ({str(exc)[:200]})") from None


def download(entry, dest_dir, *, url=None, sha256=None, allow_unverified=False, echo=click.echo):
    """Fetch one manifest entry into `dest_dir` atomically; returns (path, sha256). Raises DownloadError."""
    url = url or entry["url"]
    expected_sha = (sha256 or entry.get("sha256") or "").lower() or None
    if expected_sha is None and not allow_unverified:
        raise DownloadError(f"no sha256 is known for {entry['filename']}: pass --sha256 HEX with a "
                            f"digest you trust, or --allow-unverified to accept a file that loads "
                            f"into the network (its sha256 will be printed so you can pin it)")
    target = Path(dest_dir) / entry["filename"]
    made = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest, received, announced = hashlib.sha256(), 0, None
        request = urllib.request.Request(url, headers={"User-Agent": "anime-face-app/1"})
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
                announced = resp.headers.get("Content-Length")
                announced = int(announced) if announced and announced.isdigit() else None
                length = announced or entry.get("size")
                with click.progressbar(length=length or 0, label=f"{entry['filename']}",
                                       show_pos=True) as bar:
                    while block := resp.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
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
        os.replace(tmp, target)
        return target, actual
    except BaseException:
        tmp.unlink(missing_ok=True)
        if made and not any(target.parent.iterdir()):
            target.parent.rmdir()
        raise


def write_cutout_card(name, entry, path, digest, url, verified):
    """Make the folder of a downloaded U-2-Net file a model directory that /api/cutout can serve."""
    card = {
        "name": name, "kind": "cutout", "version": "official", "architecture": entry["architecture"],
        "input_size": 320, "mean": list(MEAN), "std": list(STD),
        "normalisation": "divide by the picture's maximum, then ImageNet mean/std (official U-2-Net)",
        "weights": Path(path).name, "sha256": digest,
        "source": {"url": url, "license": entry.get("license"), "sha256_published": verified,
                   "note": entry.get("note")},
        "training": {"data": "DUTS-TR, general salient objects (the official U-2-Net release)",
                     "command": f"flask --app wsgi models download {name}"
                                + ("" if verified else f" --sha256 {digest}")},
    }
    write_card(Path(path).parent, card)
    return card


def _manifest(path):
    if not path:
        return MANIFEST
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"cannot read manifest {path}: {exc}") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"manifest {path} must be a JSON object of name -> entry")
    return data


@models_cli.command("download")
@click.argument("name")
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="Folder for the file (default: models/official).")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False), default=None,
              help="JSON manifest to use instead of the built-in one.")
@click.option("--url", default=None, help="Fetch from this URL instead of the manifest's (a mirror).")
@click.option("--sha256", default=None, help="Expected sha256, overriding the manifest's.")
@click.option("--allow-unverified", is_flag=True,
              help="Accept a file with no known sha256 if it loads strictly into the network.")
@click.option("--force", is_flag=True, help="Download even when a verified copy is present.")
def download_command(name, dest, manifest_path, url, sha256, allow_unverified, force):
    """Download official weights NAME (inception_v3, u2net, u2netp) into models/official/.

    A U-2-Net file gets a folder of its own with a card: a model directory for CUTOUT_MODEL.
    """
    manifest = _manifest(manifest_path)
    if name not in manifest:
        raise click.ClickException(f"unknown model {name!r}; choose one of {', '.join(sorted(manifest))}")
    entry = manifest[name]
    dest_dir = Path(dest) if dest else OFFICIAL_DIR
    target = dest_dir / entry["filename"]
    expected = (sha256 or entry.get("sha256") or "").lower() or None
    serves = entry.get("architecture") in CUTOUT_ARCHITECTURES
    if target.is_file() and expected and not force and sha256_file(target) == expected:
        click.echo(f"{target} is already present and verified (sha256 {expected[:16]}...)")
        if serves and not (target.parent / "card.json").is_file():
            write_cutout_card(name, entry, target, expected, url or entry["url"], True)
        return
    try:
        path, digest = download(entry, dest_dir, url=url, sha256=sha256,
                                allow_unverified=allow_unverified)
        if serves:
            write_cutout_card(name, entry, path, digest, url or entry["url"], expected is not None)
    except DownloadError as exc:
        raise click.ClickException(f"{exc}. Nothing was written to {dest_dir}.") from None
    except OSError as exc:  # dest not writable, disk full, ...
        raise click.ClickException(f"cannot write to {dest_dir}: {exc}") from None
    note = "verified" if expected else "NOT verified against a published sha256 (it loads strictly)"
    click.echo(f"saved {path} ({path.stat().st_size} bytes, sha256 {digest}, {note})")
    if serves:
        click.echo(f"{path.parent} is a model directory: serve it with "
                   f"FLASK_CUTOUT_MODEL={_shown(path.parent)}")


def _shown(path):
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


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


@models_cli.command("list")
@click.option("--models-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of model directories (default: the app's MODEL_DIR or models/).")
def list_command(models_dir):
    """List model directories and official weight files, and whether their weights verify."""
    root = Path(models_dir or current_app.config.get("MODEL_DIR") or ROOT / "models")
    dirs = list_model_dirs(root)
    click.echo(f"model directories in {root}:" if dirs else f"no model directories in {root}")
    for model_dir in dirs:
        try:
            card = load_card(model_dir)
            verify_weights(model_dir, card)
            extra = f" backbone={card['backbone']}" if card.get("backbone") else ""
            click.echo(f"  {model_dir.name}: {card['kind']}{extra} weights OK")
        except ModelError as exc:
            click.echo(f"  {model_dir.name}: FAILED - {exc}")
    click.echo(f"official weights in {OFFICIAL_DIR}:")
    for name, path, status in official_status():
        click.echo(f"  {name}: {status} ({path.name})")
