"""`flask demo render`: render the Live2D characters into the cache (register render_command)."""
from pathlib import Path

import click

from app.demo_data.live2d import cast
from app.demo_data.live2d.renderer import DEFAULT_CACHE, DEFAULT_COUNT, DEFAULT_SIZE, render


class _Progress:
    """A click progress bar that opens on the first report, once the total is known."""

    def __init__(self):
        self.bar = None
        self.rendered = 0

    def __call__(self, done, total, figure, pose_id, skipped):
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="rendering Live2D poses",
                                         show_pos=True, item_show_func=lambda item: item)
            self.bar.__enter__()
        self.bar.update(1, f"{figure} #{pose_id:04d}{' (done before)' if skipped else ''}")

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


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
    progress = _Progress()
    try:
        summary = render(out_dir, characters=list(characters) or None, count_per_character=count,
                         seed=seed, size=size, progress=progress)
    except (cast.ModelsMissing, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc))
    finally:
        progress.close()
    per = summary["seconds"] / summary["rendered"] if summary["rendered"] else 0.0
    click.echo(f"{summary['rendered']} rendered ({per:.2f} s each), {summary['skipped']} already there, "
               f"in {out_dir}")
    if sheet:
        from app.demo_data.live2d.contact_sheet import contact_sheet
        click.echo(f"contact sheet: {contact_sheet(out_dir, sheet)}")
