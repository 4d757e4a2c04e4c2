"""`flask storage move`: what older versions (or SQLite-era folders) kept as files, copied into
PostgreSQL, where every app instance and worker reads it (pictures; retrained model versions)."""
import hashlib

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.config import resolve_path
from app.storage import db, images, model_versions
from app.storage.models import ModelFile, ModelVersion, Picture

command = AppGroup("storage", help="Where pictures and retrained models are kept.")


@command.command("move")
def move_command():
    """Copy picture files and retrained model folders from the report folder into PostgreSQL.

    Each picture is checked against its sha256 first; what is already in the database is left as it
    is, so running it again copies nothing new. The files stay where they were (delete them once
    every instance runs on the database).
    """
    app = current_app._get_current_object()
    root = resolve_path(app.config["REPORT_DIR"])
    with db.session(app, write=True) as s:
        if not images.in_database(s):
            raise click.ClickException("the database is SQLite: pictures and models stay files on this "
                                       "machine; set FLASK_DATABASE_URL to a PostgreSQL database first")
        known = set(s.scalars(select(Picture.sha256)))
        moved = damaged = 0
        for sha256, path in images.files(root):
            if sha256 in known:
                continue
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                damaged += 1
                click.echo(f"skipped {path}: its bytes do not match its name (damaged)", err=True)
                continue
            images.store(s, root, data)
            moved += 1
        kept = set(s.scalars(select(ModelFile.version_id)))
        versions = 0
        for version in s.scalars(select(ModelVersion)):
            folder = model_versions.resolve(root, version)
            if version.id not in kept and (folder / "card.json").is_file():
                model_versions.keep_files(s, version, folder)
                versions += 1
    click.echo(f"{moved} picture(s) and {versions} model version(s) copied into the database"
               + (f"; {damaged} damaged picture file(s) skipped" if damaged else ""))
    if damaged:
        raise SystemExit(1)
