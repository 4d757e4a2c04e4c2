"""`flask models download NAME` and `flask models list`: official weights, fetched and verified."""
import json
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app.build.official import MANIFEST, DownloadError, download, official_status, serves_cutout, write_cutout_card
from app.config import OFFICIAL_DIR, ROOT
from app.storage.files import sha256_file
from app.storage.model_dirs import ModelError, list_model_dirs, load_card, verify_weights

command = AppGroup("models", help="Download and inspect model weights.")


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


def _shown(path):
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _export_backbone(name, dest):
    """After a backbone's weights arrive in their default place: its verified ONNX export, which
    serving needs (app/build/backbone_export.py)."""
    from app import nets
    from app.build.backbone_export import ensure_export
    from app.config import resolve_path

    if name not in nets.names("backbone") or dest:
        return
    try:
        record, built = ensure_export(name, resolve_path(current_app.config["ONNX_DIR"]))
    except ModelError as exc:
        raise click.ClickException(f"{name}: {exc}") from None
    click.echo(f"ONNX export {record['file']} {'built and verified' if built else 'up to date'}")


@command.command("download")
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
    serves = serves_cutout(entry)
    if target.is_file() and expected and not force and sha256_file(target) == expected:
        click.echo(f"{target} is already present and verified (sha256 {expected[:16]}...)")
        if serves and not (target.parent / "card.json").is_file():
            write_cutout_card(name, entry, target, expected, url or entry["url"], True)
        if serves:
            from app.build.cutout_export import ensure_export
            ensure_export(target.parent)
        _export_backbone(name, dest)
        return
    try:
        with click.progressbar(length=entry.get("size") or 0, label=entry["filename"],
                               show_pos=True) as bar:
            def progress(received, total):
                bar.length = total or bar.length
                bar.update(received - bar.pos)
            path, digest = download(entry, dest_dir, url=url, sha256=sha256,
                                    allow_unverified=allow_unverified, progress=progress)
        if serves:
            write_cutout_card(name, entry, path, digest, url or entry["url"], expected is not None)
            from app.build.cutout_export import export_cutout
            export_cutout(path.parent)  # served through ONNX Runtime, verified against torch
    except (DownloadError, ModelError) as exc:
        raise click.ClickException(f"{exc}. Nothing was written to {dest_dir}.") from None
    except OSError as exc:  # dest not writable, disk full, ...
        raise click.ClickException(f"cannot write to {dest_dir}: {exc}") from None
    note = "verified" if expected else "NOT verified against a published sha256 (it loads strictly)"
    click.echo(f"saved {path} ({path.stat().st_size} bytes, sha256 {digest}, {note})")
    if serves:
        click.echo(f"{path.parent} is a model directory: serve it with "
                   f"FLASK_CUTOUT_MODEL={_shown(path.parent)}")
    _export_backbone(name, dest)


@command.command("list")
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


@command.command("rollback")
def rollback_command():
    """Go back one classifier version: the live retrained head is retired and the one before it
    (or the configured FLASK_CLASSIFIER_MODEL) serves again, in every worker within a request."""
    from app.storage import db, model_versions
    app = current_app._get_current_object()
    with db.session(app, write=True) as s:
        try:
            old, now = model_versions.rollback(s)
        except model_versions.NothingToRollBack as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"rolled back version {old.id} ({old.path})")
        click.echo(f"live now: version {now.id} ({now.path})" if now else
                   f"live now: the configured model ({app.config['CLASSIFIER_MODEL']})")


@command.command("versions")
def versions_command():
    """List the classifier versions trained here, newest first."""
    from app.storage import db, model_versions
    with db.session(current_app._get_current_object()) as s:
        rows = model_versions.history(s)
    if not rows:
        click.echo("no retrained versions: the configured model serves")
    for v in rows:
        click.echo(f"{v.id:>4}  {v.status:<12} {v.created:%Y-%m-%d %H:%M}  {v.path}  {v.note}")


@command.command("convert")
@click.argument("roots", nargs=-1, type=click.Path(file_okay=False, exists=True))
def convert_command(roots):
    """Rewrite heads and projections kept in torch files as numpy (`weights.npz`), once.

    Serving reads heads without torch; this converts model folders made before that (ROOTS,
    default: the model folder and the retrained versions under the report folder). Needs torch.
    """
    from app.build.torch_weights import convert_to_arrays
    from app.config import resolve_path
    from app.storage.model_dirs import CARD_NAME

    roots = [Path(r) for r in roots] or [resolve_path(current_app.config["MODEL_DIR"]),
                                         resolve_path(current_app.config["REPORT_DIR"]) / "models"]
    converted = 0
    for root in roots:
        for card_path in sorted(Path(root).rglob(CARD_NAME)) if Path(root).is_dir() else []:
            try:
                card = convert_to_arrays(card_path.parent)
            except ModelError as exc:
                raise click.ClickException(str(exc)) from None
            if card is not None:
                converted += 1
                click.echo(f"{_shown(card_path.parent)}: now {card['weights']} (sha256 {card['sha256'][:16]}...)")
    click.echo(f"{converted} model folder(s) converted")
