"""`flask bench fetch|build|eval`: the field bench (app/field_bench/README.md)."""
import json
from pathlib import Path

import click
from flask.cli import AppGroup

from app.commands.common import ERRORS, fail

command = AppGroup("bench", help="The field bench: pictures made apart from every training set.")


@command.command("fetch")
def fetch_command():
    """Download the bench's art (Debian packages; unseen Live2D characters rendered from npm)."""
    from app.field_bench import sources
    try:
        sources.fetch(log=click.echo)
    except ERRORS as exc:
        fail(exc)


@command.command("build")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the bench goes (default .cache/field_bench/bench).")
@click.option("--count", type=int, default=None, help="Pictures per set and split (default 30).")
def build_command(root, count):
    """Make the bench's val and test pictures (resumable) and their contact sheets."""
    from app.field_bench import build
    root = root or build.DEFAULT_ROOT
    try:
        made = build.build(root, count or build.DEFAULT_COUNT, log=click.echo)
        for split in ("val", "test"):
            build.contact_sheet(build.load(root, split), root / f"sheet-{split}.png", columns=10)
    except ERRORS as exc:
        fail(exc)
    click.echo(json.dumps(made))


@command.command("eval")
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["val", "test"]), default="val", show_default=True,
              help="val for every choice; test once per model, for the record.")
@click.option("--size", type=int, default=None, help="Network input side (default: the card's).")
@click.option("--fit", type=click.Choice(["squash", "pad"]), default=None, help="Default: the card's.")
@click.option("--refine-small", type=float, default=None,
              help="Second pass on figures found under this share of the picture (0: off; default: the card's).")
@click.option("--characters", is_flag=True, help="Also score one character at a time (page box vs face prompt).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for report.json and worst.png (default runs/field-bench/<model>-<size>-...).")
@click.option("--threads", type=int, default=2, show_default=True)
def eval_command(model, split, size, fit, refine_small, characters, root, out, threads):
    """Score MODEL (a cutout model directory) on the bench's SPLIT."""
    from app.field_bench import build, evaluate
    from app.inference.onnx_runner import OnnxCutout, onnx_file
    try:
        path, spec = onnx_file(model)
        if fit is not None:
            spec["fit"] = fit
        if refine_small is not None:
            spec["refine_small"] = refine_small
        runner = OnnxCutout(path, spec, threads=threads, size=size, name=model.name)
        label = f"{model.name}-{runner.input_size}-{runner.preprocess['fit']}-r{runner.preprocess['refine_small']:g}"
        out = out or Path("runs") / "field-bench" / split / label
        items = build.load(root or build.DEFAULT_ROOT, split)
        click.echo(f"{label}: {len(items)} {split} pictures", err=True)
        report = evaluate.evaluate(runner, items, out, characters=characters, log=lambda m: click.echo(m, err=True))
    except ERRORS as exc:
        fail(exc)
    summary = {"model": label, "split": split, "whole": report["whole"],
               "seconds_per_picture": report["seconds_per_picture"]}
    for key in ("faces_as_prompts", "one_character"):
        if key in report:
            summary[key] = {k: v["all"] for k, v in report[key].items()}
    click.echo(json.dumps(summary))
    click.echo(f"report: {out}/report.json, worst pictures: {out}/worst.png", err=True)
