"""`flask train cutout` and `flask evaluate cutout`."""
import datetime
import json
import shlex
import sys
from pathlib import Path

import click
import torch

from app.cli import evaluate_cli, train_cli
from app.cutout import MEAN, STD, Cutter
from app.model_store import ModelError, write_model_dir
from app.nets.u2net import ARCHITECTURES
from app.training import cutout_eval, demo_cast
from app.training.cutout_train import CutoutTrainConfig, train


def _data_arg(value):
    if value != "demo-cast" and not Path(value, "images").is_dir():
        raise click.BadParameter(f"{value}: expected a folder with images/ and masks/, or demo-cast")
    return value


@train_cli.command("cutout")
@click.argument("data", callback=lambda ctx, p, v: _data_arg(v))
@click.option("--arch", type=click.Choice(["u2netp", "u2net"]), default="u2netp", show_default=True)
@click.option("--init", "init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Weights to start from: an official file (transfer learning) or a run's "
                   "best.pt (e.g. to fine-tune at a higher --size).")
@click.option("--size", type=int, default=192, show_default=True, help="Training resolution.")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--eval-every", type=int, default=100, show_default=True)
@click.option("--eval-count", type=int, default=24, show_default=True,
              help="Fixed validation pictures (best checkpoint is chosen on these).")
@click.option("--threads", type=int, default=0, help="torch threads (0: torch's default).")
@click.option("--warp", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="demo-cast: share of sprites sheared, stretched and flared into new silhouettes.")
@click.option("--extra-art", is_flag=True,
              help="demo-cast: also train on the packages' bust and chibi pictures (new shapes).")
@click.option("--portraits", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="demo-cast: share of figures drawn from Wesnoth's portraits (`flask demo fetch "
                   "--portraits` first): some 120 more people-shaped figures, training only "
                   "(every sixth is held out: `evaluate cutout MODEL portraits-dev`).")
@click.option("--clipart", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="demo-cast: share of figures drawn from 54 clip-art people (`flask demo fetch "
                   "--clipart` first), training only.")
@click.option("--backdrops", is_flag=True,
              help="demo-cast: also compose over some 60 wallpapers and painted landscapes "
                   "(`flask demo fetch --backdrops` first), training only.")
@click.option("--distractors", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="demo-cast: share of training pictures with one to three objects (fruit, "
                   "tools, cars, houses; `flask demo fetch --distractors` first) pasted behind "
                   "the figures as background.")
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("runs/cutout"),
              show_default=True, help="Checkpoints; an interrupted run resumes from here.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the best checkpoint as a model directory, e.g. models/my-cutout.")
@click.option("--heldout", default=None, callback=lambda ctx, p, v: v and _data_arg(v),
              help="Held-out pairs for the card's metrics (default: the demo cast's test split "
                   "when DATA is demo-cast).")
def train_cutout_command(data, out, run_dir, heldout, **options):
    """Train U2-Net/U2-NetP on DATA (a folder of images/ + masks/, or demo-cast).

    Running the same command again resumes an interrupted run; once it has finished, it only
    exports the best checkpoint to --out, with held-out metrics in the card.
    """
    options["init"] = options["init"] or ""
    cfg = CutoutTrainConfig(data=data, **options)
    try:
        train(cfg, run_dir, log=click.echo)
        if out is not None:
            heldout = heldout or ("demo-cast" if data == "demo-cast" else None)
            command = "flask " + " ".join(shlex.quote(a) for a in sys.argv[1:])
            card = export_model_dir(run_dir / "best.pt", out, out.name, command, heldout,
                                    eval_dir=run_dir / "heldout")
            click.echo(json.dumps(card["metrics"], indent=2))
            click.echo(f"wrote {out}; overlay sheet in {run_dir / 'heldout'}")
    except (FileNotFoundError, ValueError, ModelError) as exc:
        raise click.ClickException(str(exc))


def export_model_dir(checkpoint, out, name, command="", heldout=None, eval_dir=None):
    """Write a checkpoint's weights as models/<name>/ with its card (held-out metrics if `heldout`)."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    card = {
        "name": name, "kind": "cutout", "version": "1",
        "created": datetime.date.today().isoformat(),
        "architecture": cfg["arch"], "input_size": cfg["size"], "mean": list(MEAN), "std": list(STD),
        "normalisation": "divide by the picture's maximum, then ImageNet mean/std (official U-2-Net)",
        "training": {"data": cfg["data"], "steps": ckpt["step"], "config": cfg, "command": command,
                     "validation": ckpt.get("metrics")},
        "metrics": {},
    }
    if cfg.get("init"):
        card["training"]["initialised_from"] = _init_provenance(cfg["init"])
    if heldout:
        net = ARCHITECTURES[cfg["arch"]]()
        net.load_state_dict(ckpt["model"])
        pairs = cutout_eval.heldout_pairs(heldout)
        report = cutout_eval.evaluate(Cutter(net, card), pairs, eval_dir)
        card["metrics"] = {"heldout": heldout, **report}
        if heldout == "demo-cast":
            test = demo_cast.SPLITS["test"]
            card["metrics"]["heldout"] = (
                f"demo-cast test split: {report['count']} composites of sprites never trained on "
                f"({', '.join(test['sprites'])}) over backgrounds never trained on "
                f"({', '.join(test['backgrounds'])} and synthetic ones from another seed)")
    write_model_dir(out, card, ckpt["model"])
    return card


def _init_provenance(path):
    """What a fine-tune started from: the earlier run's recipe when `path` is one of our checkpoints."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError):
        return {"weights": str(path), "note": "no longer readable at export"}
    if "config" not in ckpt:
        return {"weights": str(path)}
    return {"checkpoint": str(path), "steps": ckpt.get("step"), "config": ckpt["config"],
            "validation": ckpt.get("metrics")}


@evaluate_cli.command("cutout")
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data", callback=lambda ctx, p, v: v if v == "portraits-dev" else _data_arg(v))
@click.option("--count", type=int, default=60, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for report.json and sheet.png (default: MODEL/eval).")
def evaluate_cutout_command(model, data, count, out):
    """IoU, MAE and max F-beta of MODEL on held-out DATA, plus overlay sheets.

    DATA: a folder of images/ + masks/, demo-cast (its test split: final figures) or portraits-dev
    (held-out Wesnoth portraits: for choosing between training recipes).
    """
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
