"""`flask train cutout` and `flask evaluate cutout`."""
import datetime
import json
from pathlib import Path

import click
import torch

from app.cli import evaluate_cli, train_cli
from app.cutout import MEAN, STD, Cutter
from app.model_store import ModelError, write_model_dir
from app.training import cutout_eval
from app.training.cutout_train import CutoutTrainConfig, train


def _data_arg(value):
    if value != "demo-cast" and not Path(value, "images").is_dir():
        raise click.BadParameter(f"{value}: expected a folder with images/ and masks/, or demo-cast")
    return value


@train_cli.command("cutout")
@click.argument("data", callback=lambda ctx, p, v: _data_arg(v))
@click.option("--arch", type=click.Choice(["u2netp", "u2net"]), default="u2netp", show_default=True)
@click.option("--init", "init", type=click.Path(exists=True, dir_okay=False), default="",
              help="Official weights to start from (transfer learning).")
@click.option("--size", type=int, default=192, show_default=True, help="Training resolution.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--eval-every", type=int, default=100, show_default=True)
@click.option("--threads", type=int, default=0, help="torch threads (0: torch's default).")
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("runs/cutout"),
              show_default=True, help="Checkpoints; an interrupted run resumes from here.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the best checkpoint as a model directory, e.g. models/my-cutout.")
def train_cutout_command(data, out, run_dir, **options):
    """Train U2-Net/U2-NetP on DATA (a folder of images/ + masks/, or demo-cast)."""
    cfg = CutoutTrainConfig(data=data, **options)
    try:
        train(cfg, run_dir, log=click.echo)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc))
    if out is not None:
        export_model_dir(run_dir / "best.pt", out, name=out.name)
        click.echo(f"wrote {out}")


def export_model_dir(checkpoint, out, name, metrics=None, command=""):
    """Write a checkpoint's weights as models/<name>/ with its card."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    card = {
        "name": name, "kind": "cutout", "version": "1",
        "created": datetime.date.today().isoformat(),
        "architecture": cfg["arch"], "input_size": cfg["size"], "mean": list(MEAN), "std": list(STD),
        "training": {"data": cfg["data"], "steps": ckpt["step"], "config": cfg, "command": command,
                     "validation": ckpt.get("metrics")},
        "metrics": metrics or {},
    }
    write_model_dir(out, card, ckpt["model"])
    return card


@evaluate_cli.command("cutout")
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data", callback=lambda ctx, p, v: _data_arg(v))
@click.option("--count", type=int, default=60, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for report.json and sheet.png (default: MODEL/eval).")
def evaluate_cutout_command(model, data, count, out):
    """IoU, MAE and max F-beta of MODEL on held-out DATA, plus an overlay sheet."""
    try:
        cutter = Cutter.load(model)
        pairs = cutout_eval.heldout_pairs(data, count)
    except (ModelError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc))
    out = out or model / "eval"
    with click.progressbar(length=len(pairs), label="evaluating") as bar:
        def progress(items):
            for item in items:
                yield item
                bar.update(1)
        report = cutout_eval.evaluate(cutter, pairs, out, progress=progress)
    click.echo(json.dumps(report, indent=2))
    click.echo(f"report and sheet in {out}")
