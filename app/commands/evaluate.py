"""`flask evaluate classifier` and `flask evaluate cutout`: held-out figures, reports and sheets."""
import json
from pathlib import Path

import click
from flask.cli import AppGroup

from app.commands.common import ERRORS, bar, fail

command = AppGroup("evaluate", help="Evaluate a trained model on held-out data.")


@command.command("classifier")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where report.json, confusion.png and training_curve.png go (default runs/eval-<model>).")
def classifier_command(model_dir, data_dir, out_dir):
    """Top-1/top-5, per-class precision/recall and unknown rejection of MODEL_DIR on DATA_DIR (its test/)."""
    from app.training import classifier_eval
    out_dir = Path(out_dir or Path("runs") / f"eval-{Path(model_dir).name}")
    try:
        folder = classifier_eval.test_folder(data_dir)
        n = sum(1 for p in Path(folder).rglob("*") if p.is_file())
        with bar(n, "evaluating") as progress:
            report = classifier_eval.evaluate_model_dir(model_dir, data_dir, out_dir, progress.update)
    except ERRORS as exc:
        fail(exc)
    click.echo(f"{report['cast_faces']} cast faces: top-1 {report['top1']}, top-5 {report['top5']}, "
               f"wrongly flagged unknown {report['false_unknown_rate']}; "
               f"{report['outside_faces']} faces outside the cast: flagged unknown "
               f"{report['unknown_rejection_rate']}")
    for label, pc in report["per_class"].items():
        click.echo(f"  {label}: precision {pc['precision']}, recall {pc['recall']}, flagged unknown "
                   f"{pc['flagged_unknown']} ({pc['support']} faces)")
    click.echo("unknown trade-off (threshold: known faces called unknown / outsiders rejected):")
    for row in report["unknown_tradeoff"]:
        mark = "  <- the model's" if row["threshold"] == round(report["unknown_threshold"], 4) else ""
        click.echo(f"  {row['threshold']}: {row['known_called_unknown']} / {row['outsiders_rejected']}{mark}")
    for kind, m in report.get("per_kind", {}).items():
        click.echo(f"{kind} crops: {m['cast_faces']} known, top-1 {m['top1']}, named right and accepted "
                   f"{m['top1_accepted']}; {m['outside_faces']} outside the cast, flagged unknown "
                   f"{m['unknown_rejection_rate']}")
    click.echo(f"report: {out_dir}/report.json, {out_dir}/confusion.png, {out_dir}/training_curve.png"
               + (f", {out_dir}/tradeoff.png" if "per_kind" in report else ""))


@command.command("cutout")
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data")
@click.option("--count", type=int, default=60, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for report.json and sheet.png (default: MODEL/eval).")
def cutout_command(model, data, count, out):
    """IoU, MAE and max F-beta of MODEL on held-out DATA, plus overlay sheets.

    DATA: a folder of images/ + masks/, demo-cast (its test split: final figures), portraits-dev
    (held-out Wesnoth portraits: for choosing between training recipes), live2d-characters (Haruto,
    held out whole) or live2d-poses (the other Live2D figures' test poses; `demo render` first).
    """
    from app.inference.cutout import Cutter
    from app.training import cutout_eval
    from app.training.cutout_data import heldout
    try:
        cutter = Cutter.load(model)
        _, items = heldout(data, count)
        out = out or model / "eval"
        with bar(len(items), "evaluating") as progress:
            def counted(rows):
                for row in rows:
                    yield row
                    progress.update(1)
            report = cutout_eval.evaluate(cutter, items, out, progress=counted)
    except ERRORS as exc:
        fail(exc)
    click.echo(json.dumps(report, indent=2))
    click.echo(f"report and sheet in {out}")
