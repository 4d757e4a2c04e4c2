"""`flask reports list` and `flask reports export DIR`."""
from collections import Counter

import click
from flask import current_app
from flask.cli import AppGroup

from app.config import resolve_path
from app.storage import db, reports

command = AppGroup("reports", help="List and export wrong-label reports.")

STATUS = click.Choice(["all", *reports.STATUSES])


def _rows(status):
    with db.session(current_app._get_current_object()) as s:
        return reports.list_reports(s, None if status == "all" else status)


@command.command("list")
@click.option("--status", type=STATUS, default="all", show_default=True)
def list_command(status):
    """List the wrong-label reports, oldest first, with a count per label."""
    rows = _rows(status)
    for r in rows:
        decided = f" -> {r.decided_label}" if r.decided_label else ""
        click.echo(f"{r.id}  {r.status:<8} {r.label}{decided}  (model said: {r.predicted or '-'})")
    counts = Counter(r.decided_label or r.label for r in rows)
    click.echo(f"{len(rows)} report(s)"
               + ("; " + ", ".join(f"{k}: {v}" for k, v in counts.most_common()) if counts else ""))


@command.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--status", type=STATUS, default="all", show_default=True,
              help="Which reports (accepted ones go under their decided label).")
def export_command(out_dir, status):
    """Copy report images to OUT_DIR/<label>/<id>.png, one folder per right label."""
    rows = _rows(status)
    root = resolve_path(current_app.config["REPORT_DIR"])
    with click.progressbar(length=len(rows), label="Exporting reports") as bar, \
            db.session(current_app._get_current_object()) as s:
        for _ in reports.export_reports(s, root, out_dir, rows):
            bar.update(1)
    click.echo(f"Exported {len(rows)} report(s) to {out_dir}")
