"""`flask reports list` and `flask reports export DIR`."""
from collections import Counter

import click
from flask import current_app
from flask.cli import AppGroup

from app.config import resolve_path
from app.storage import reports

command = AppGroup("reports", help="List and export wrong-label reports.")


def _report_dir():
    return resolve_path(current_app.config["REPORT_DIR"])


@command.command("list")
def list_command():
    """List the wrong-label reports, oldest first, with a count per label."""
    records = reports.list_reports(_report_dir())
    for r in records:
        click.echo(f"{r['id']}  {r['label']}  (model said: {r.get('predicted') or '-'})")
    counts = Counter(r["label"] for r in records)
    click.echo(f"{len(records)} report(s) in {_report_dir()}"
               + ("; " + ", ".join(f"{k}: {v}" for k, v in counts.most_common()) if counts else ""))


@command.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False))
def export_command(out_dir):
    """Copy report images to OUT_DIR/<label>/<id>.png, one folder per right label."""
    records = reports.list_reports(_report_dir())
    with click.progressbar(length=len(records), label="Exporting reports") as bar:
        for _ in reports.export_reports(_report_dir(), out_dir, records):
            bar.update(1)
    click.echo(f"Exported {len(records)} report(s) to {out_dir}")
