"""`flask teach PATH`: teach a cast from a video, an animated picture or a folder of pictures.

The material becomes a teach session exactly as an operator's upload does (a job row on the queue's
table, the same body as the worker's), run here in this process with a progress bar; Ctrl+C
cancels it and leaves nothing written. The groups are then named on the operator page
(/teach/<session>).
"""
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from app.commands.common import ERRORS, fail


@click.command("teach", help="Find the faces of PATH (video, animated picture or folder), grouped by "
                             "character, as a teach session to name on the operator page.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@with_appcontext
def command(path):
    from app.jobs import store
    from app.jobs import teach as teach_job
    from app.storage import db
    from app.teach import material
    from app.teach import store as teach_store
    app = current_app._get_current_object()
    try:
        material.kind_of(path)
    except material.MaterialError as exc:
        fail(exc)
    job = store.create(app, "cli", "teach", 0, {"path": str(path.resolve())}, {"client": 10**9, "queue": 10**9})
    with db.session(app, write=True) as s:
        session = teach_store.create(s, path.name, job.id)
        key = session.key
    me = store.worker_id()
    store.claim(app, job.id, me)
    shown = {"stage": None}

    def progress(stage, done, total):
        if stage != shown["stage"]:
            shown["stage"] = stage
            click.echo(f"{'frames' if stage == 'frames' else 'embedding faces'}...", err=True)
        if done % 40 == 0:
            click.echo(f"  {stage}: {done} of ~{total}", err=True)

    try:
        status = teach_job.attempt(app, job.id, me, path=path, on_progress=progress)
    except KeyboardInterrupt:
        store.cancel(app, store.get(app, job.id))
        teach_job._abandon(app, job.id)
        fail("cancelled: nothing was written")
    except ERRORS as exc:
        fail(exc)
    if status != "done":
        row = store.get(app, job.id)
        fail(f"teaching {path} {status}: {row.message if row else ''}")
    with db.session(app) as s:
        view = teach_store.describe(s, teach_store.by_key(s, key))
    stats = view["stats"]
    click.echo(f"{stats['frames']} frames, {stats['tracks']} face tracks, {stats['faces']} faces in "
               f"{stats['groups']} groups ({stats['set_aside']} set aside) in {stats['seconds']} s")
    for group in view["groups"]:
        click.echo(f"  group {group['number']}: {group['faces']} faces in {group['tracks']} tracks")
    click.echo(f"session {key}: name the groups at /teach/{key}")
