"""`flask demo fetch` and `flask demo compose`: the demo-data engine's art and sample pictures."""
import subprocess
from pathlib import Path

import click
from flask.cli import AppGroup
from PIL import Image

from app.commands.common import ERRORS, bar, fail
from app.demo_data import renpy_cast, sample
from app.demo_data.live2d.command import render_command
from app.demo_data.sources import ALWAYS, SOURCES

command = AppGroup("demo", help="The demo data: Ren'Py sprites, more art from Debian and Live2D renders.")
command.add_command(render_command, "render")


def _source_options(func):
    for name in reversed([n for n in SOURCES if n not in ALWAYS]):
        func = click.option(f"--{name}", is_flag=True, help=f"Also get {SOURCES[name].about}.")(func)
    return func


@command.command("fetch")
@_source_options
def fetch_command(**wanted):
    """Download the demo cast (and the chosen extra art) from Debian into .cache/."""
    names = list(ALWAYS) + [name for name, on in wanted.items() if on]
    try:
        for name in names:
            SOURCES[name].fetch(log=click.echo)
    except (*ERRORS, subprocess.CalledProcessError) as exc:
        fail(exc)


@command.command("sample")
@click.argument("out", type=click.Path(path_type=Path), required=False)
def sample_command(out):
    """Write the page's sample picture (default static/vendor/sample-cast.webp) from the demo cast."""
    out = out or Path(__file__).resolve().parents[2] / "static" / "vendor" / sample.SAMPLE_NAME
    try:
        click.echo(f"sample picture: {sample.write_sample(out)}")
    except (*ERRORS, RuntimeError) as exc:
        fail(exc)


@command.command("compose")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(sorted(renpy_cast.SPLITS)), default="train", show_default=True)
@click.option("--count", type=int, default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=(int, int), default=(512, 384), show_default=True)
def compose_command(out_dir, split, count, seed, size):
    """Write composites as OUT_DIR/images/*.png and OUT_DIR/masks/*.png (a cutout data folder)."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(exist_ok=True)
    try:
        items = renpy_cast.composites(split, count, seed=seed, size=tuple(size))
        with bar(count, f"composing {split}") as progress:
            for i, comp in enumerate(items):
                name = f"{split}-{seed}-{i:05d}.png"
                Image.fromarray(comp.image).save(out_dir / "images" / name)
                Image.fromarray(comp.mask).save(out_dir / "masks" / name)
                progress.update(1)
    except ERRORS as exc:
        fail(exc)
