"""`flask demo ...`: fetch the demo cast and write sample composites."""
import subprocess
from pathlib import Path

import click
from PIL import Image

from app.cli import demo_cli
from app.training import demo_cast


@demo_cli.command("fetch")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=demo_cast.DEFAULT_CACHE,
              show_default=True)
@click.option("--portraits", is_flag=True,
              help="Also get Wesnoth's portraits (GPL-2+, about 150 MB to download), extra training "
                   "shapes for `train cutout --portraits`.")
@click.option("--backdrops", is_flag=True,
              help="Also get wallpapers and Wesnoth's painted landscapes (CC-BY-SA-3.0, GPL-2+; "
                   "about 250 MB to download), extra backgrounds for `train cutout --backdrops`.")
@click.option("--clipart", is_flag=True,
              help="Also get 54 clip-art people (public domain, about 130 MB to download), extra "
                   "training shapes for `train cutout --clipart`.")
@click.option("--distractors", is_flag=True,
              help="Also get Tux Paint's stamps (GPL-2, about 160 MB to download): some 300 "
                   "objects for `train cutout --distractors`.")
def fetch_command(cache_dir, portraits, backdrops, clipart, distractors):
    """Download the Ren'Py demo sprites and backgrounds from Debian into the cache."""
    try:
        demo_cast.fetch(cache_dir, log=click.echo)
        if portraits:
            from app.training import portraits as portrait_art
            portrait_art.fetch(log=click.echo)
        if backdrops:
            from app.training import backdrops as backdrop_art
            backdrop_art.fetch(log=click.echo)
        if clipart:
            from app.training import clipart as clipart_art
            clipart_art.fetch(log=click.echo)
        if distractors:
            from app.training import distractors as distractor_art
            distractor_art.fetch(log=click.echo)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        raise click.ClickException(str(exc))


@demo_cli.command("compose")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(sorted(demo_cast.SPLITS)), default="train", show_default=True)
@click.option("--count", type=int, default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=(int, int), default=(512, 384), show_default=True)
def compose_command(out_dir, split, count, seed, size):
    """Write composites as OUT_DIR/images/*.png and OUT_DIR/masks/*.png (a cutout data folder)."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(exist_ok=True)
    try:
        items = demo_cast.composites(split, count, seed=seed, size=tuple(size))
        with click.progressbar(items, length=count, label=f"composing {split}") as bar:
            for i, comp in enumerate(bar):
                name = f"{split}-{seed}-{i:05d}.png"
                Image.fromarray(comp.image).save(out_dir / "images" / name)
                Image.fromarray(comp.mask).save(out_dir / "masks" / name)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc))
