"""`flask demo render`: render the Live2D characters into the cache (register render_command)."""
import time
from pathlib import Path

import click

from app.demo_data.live2d import cast
from app.demo_data.live2d.renderer import DEFAULT_CACHE, DEFAULT_COUNT, DEFAULT_SIZE, render


class _Progress:
    """One line about every 5% of the poses (readable on a terminal and in a log alike)."""

    def __init__(self):
        self.first = None  # when the first new render was written (after the browser started)
        self.rendered = 0
        self.shown = 0

    def __call__(self, done, total, figure, pose_id, skipped):
        if not skipped:
            self.rendered += 1
            self.first = self.first or time.monotonic()
        if done - self.shown < max(1, total // 20) and done != total:
            return
        self.shown = done
        line = f"[{done:>{len(str(total))}}/{total}] {figure} #{pose_id:04d}"
        if self.rendered > 1:
            each = (time.monotonic() - self.first) / (self.rendered - 1)
            left = each * (total - done)
            line += f", {each:.2f} s a render, {left / 60:.0f} min left" if left >= 120 else f", {each:.2f} s a render"
        click.echo(line)


@click.command("render")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_CACHE,
              show_default=True)
@click.option("--character", "characters", multiple=True, type=click.Choice(cast.CHARACTERS),
              help="Render only these (repeatable); all six by default.")
@click.option("--count", type=click.IntRange(1), default=DEFAULT_COUNT, show_default=True,
              help="Poses per character and outfit.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=(click.IntRange(64, 2048), click.IntRange(64, 2048)), default=DEFAULT_SIZE,
              show_default=True, help="Width and height in pixels.")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a contact sheet of renders and face crops to this PNG.")
def render_command(out_dir, characters, count, seed, size, sheet):
    """Render Live2D sample characters (npm, Debian Chromium) as RGBA PNGs with face boxes.

    Resumable: poses already rendered with the same seed and size are skipped.
    """
    try:
        summary = render(out_dir, characters=list(characters) or None, count_per_character=count,
                         seed=seed, size=size, progress=_Progress())
    except (cast.ModelsMissing, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    per = summary["seconds"] / summary["rendered"] if summary["rendered"] else 0.0
    click.echo(f"{summary['rendered']} rendered ({per:.2f} s each), {summary['skipped']} already there, "
               f"in {out_dir}")
    if sheet:
        from app.demo_data.live2d.contact_sheet import contact_sheet
        click.echo(f"contact sheet: {contact_sheet(out_dir, sheet)}")
