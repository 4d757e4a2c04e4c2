"""`flask cutout IN_DIR OUT_DIR`: cut a folder of pictures out of their backgrounds, as the API does."""
import sys
from pathlib import Path

import click
import numpy as np
from flask import current_app
from flask.cli import with_appcontext
from PIL import Image

from app.commands.common import ERRORS, fail
from app.config import model_path, resolve_path, torch_threads
from app.errors import APIError
from app.inference import imaging
from app.inference.cutout import Cutter
from app.inference.decontaminate import decontaminate
from app.storage.files import write_atomic

PICTURES = {".png", ".jpg", ".jpeg", ".webp"}


@click.command("cutout")
@with_appcontext
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", default=None, help="A cutout model directory under MODEL_DIR (default: the server's).")
@click.option("--mask", is_flag=True, help="Write the grey mask instead of the transparent picture.")
@click.option("--force", is_flag=True, help="Cut out again pictures that already have an output.")
def command(in_dir, out_dir, model, mask, force):
    """Write OUT_DIR/<name>.png for every picture in IN_DIR (PNG, JPEG, WebP; sub-folders kept).

    Pictures already cut out are skipped (--force redoes them); a file that cannot be read is
    reported and the others go on; each output is written whole or not at all.
    """
    config = current_app.config
    directory = resolve_path(config["MODEL_DIR"]) / model if model else model_path(config, "CUTOUT_MODEL")
    try:
        cutter = Cutter.load(directory, threads=torch_threads(config))
    except ERRORS as exc:
        fail(exc)
    pictures = sorted(p for p in in_dir.rglob("*") if p.is_file() and p.suffix.lower() in PICTURES)
    done = skipped = 0
    failed = []
    with click.progressbar(pictures, label=f"cutting out with {directory.name}", file=sys.stderr,
                           item_show_func=lambda p: p.name if p else "") as bar:
        for path in bar:
            target = out_dir / path.relative_to(in_dir).with_suffix(".png")
            if target.exists() and not force:
                skipped += 1
                continue
            try:
                image = imaging.decode_image(path.read_bytes(), max_bytes=int(config["MAX_CONTENT_LENGTH"]),
                                             max_pixels=int(config["MAX_IMAGE_PIXELS"]))
                if mask:
                    out = cutter.mask(image)
                else:
                    out = decontaminate(np.asarray(cutter.cutout(image)))
                write_atomic(target, imaging.png_bytes(Image.fromarray(out)))
                done += 1
            except (APIError, OSError) as exc:
                failed.append(path)
                click.echo(f"\n{path}: {getattr(exc, 'message', exc)}; skipped", err=True)
    click.echo(f"{done} cut out, {skipped} already done, {len(failed)} failed, in {out_dir}")
    if failed and not done and not skipped:
        raise SystemExit(1)
