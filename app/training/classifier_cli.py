"""`flask dataset faces|demo-faces`, `flask train classifier`, `flask evaluate classifier`."""
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from app.cli import dataset_cli, evaluate_cli, train_cli
from app.model_store import ModelError

ERRORS = (FileNotFoundError, FileExistsError, ValueError, RuntimeError, ModelError, OSError)


@contextmanager
def _bar(length, label):
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar


def _fail(exc):
    raise click.ClickException(str(exc)) from None


def _command_line(data_dir, out_dir, config, name, loco):
    # Recorded in the card so the model can be rebuilt exactly (built from the parsed options,
    # so it reads the same whichever way the command was started).
    parts = ["flask", "--app", "wsgi", "train", "classifier", str(data_dir), "--backbone", config.backbone,
             "--out", str(out_dir), "--name", name, "--augment", str(config.augment),
             "--max-false-unknown", f"{config.max_false_unknown:g}",
             "--outlier-weight", f"{config.outlier_weight:g}", "--patience", str(config.patience),
             "--seed", str(config.seed)] + (["--loco"] if loco else [])
    return " ".join(shlex.quote(p) for p in parts)


@dataset_cli.command("faces")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--from", "sources", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of material: SRC/<label>/* images and videos (any tree with --unlabelled).")
@click.option("--reports", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder written by `flask reports export` (crops already, no detection).")
@click.option("--unlabelled", is_flag=True, help="Ignore folder names; write crops to OUT/_unsorted/ to sort.")
@click.option("--every", default=2.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between video frames.")
@click.option("--margin", default=0.3, show_default=True, type=click.FloatRange(0, 2),
              help="Margin around each face box, as a share of its width, per side.")
@click.option("--dedupe-bits", default=4, show_default=True, type=click.IntRange(-1, 64),
              help="dHash distance (of 64 bits) counted as a near-duplicate; -1 keeps all.")
def faces_command(out_dir, sources, reports, unlabelled, every, margin, dedupe_bits):
    """Detect, crop and de-duplicate anime faces from images, videos and reports into OUT_DIR."""
    from app.training import face_dataset
    if not sources and not reports:
        raise click.UsageError("give at least one --from or --reports folder")
    seen = [0]

    def tick(crop):
        seen[0] += 1
        if seen[0] % 25 == 0:
            click.echo(f"  {seen[0]} faces so far (last from {crop.source})", err=True)

    try:
        stats = face_dataset.build_dataset(out_dir, sources, reports, labelled=not unlabelled,
                                           every_s=every, margin=margin, dedupe_bits=dedupe_bits,
                                           on_crop=tick)
    except ERRORS as exc:
        _fail(exc)
    click.echo(f"{stats['written']} crops written to {out_dir} ({stats['duplicates']} near-duplicates "
               f"and {stats['too_small']} tiny faces dropped): "
               + ", ".join(f"{k} {v}" for k, v in sorted(stats["labels"].items())))


@dataset_cli.command("demo-faces")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--train", "n_train", default=600, show_default=True, type=click.IntRange(1),
              help="Training composites.")
@click.option("--val", "n_val", default=200, show_default=True, type=click.IntRange(1))
@click.option("--test", "n_test", default=400, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--hold-out-val/--no-hold-out-val", default=True, show_default=True,
              help="Move one training expression per character into validation only.")
def demo_faces_command(out_dir, n_train, n_val, n_test, seed, hold_out_val):
    """Face crops of the demo cast (and of amoebax outsiders as _unknown) in OUT_DIR/{train,val,test}/."""
    from app.training import demo_cast, face_dataset
    counts = {"train": n_train, "val": n_val, "test": n_test}
    try:
        demo_cast.fetch(log=lambda m: click.echo(m, err=True))
        face_dataset.fetch_outsiders(log=lambda m: click.echo(m, err=True))
        # About 1.3 faces per composite (a third of the composites show two characters).
        expected = round(sum(counts.values()) * 1.25)
        with _bar(expected, "composing faces") as bar:
            stats = face_dataset.build_demo_faces(
                out_dir, counts, seed, hold_out_val=hold_out_val,
                on_crop=lambda c: bar.update(1) if bar.pos < expected - 1 else None)
    except (*ERRORS, __import__("subprocess").CalledProcessError) as exc:
        _fail(exc)
    for split, s in stats.items():
        click.echo(f"{split}: " + ", ".join(f"{k} {v}" for k, v in sorted(s["labels"].items())))


@train_cli.command("classifier")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--backbone", default="efficientnet_lite0", show_default=True,
              type=click.Choice(["efficientnet_lite0", "inception_v3"]))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Model directory to write (default models/<name>).")
@click.option("--name", default="classifier", show_default=True)
@click.option("--augment", default=4, show_default=True, type=click.IntRange(0, 32),
              help="Augmented copies per training crop (flip, crop jitter, scale, rotation, blur, JPEG).")
@click.option("--max-false-unknown", default=0.02, show_default=True, type=click.FloatRange(0, 0.5),
              help="Share of validation cast faces the unknown threshold may reject.")
@click.option("--outlier-weight", default=0.5, show_default=True, type=click.FloatRange(0),
              help="Weight of the push-to-uniform loss on _unknown training faces.")
@click.option("--patience", default=25, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--cache", "cache_root", default=None, type=click.Path(file_okay=False),
              help="Feature cache folder (default .cache/features).")
@click.option("--loco", is_flag=True, help="Also measure leave-one-character-out rejection on DATA/test.")
def train_classifier_command(data_dir, backbone, out_dir, name, augment, max_false_unknown,
                             outlier_weight, patience, seed, cache_root, loco):
    """Train a softmax head on frozen BACKBONE features of DATA_DIR/<label>/* (or train/ val/ test/)."""
    from app.training.classifier_train import TrainConfig, train_model_dir
    config = TrainConfig(backbone=backbone, augment=augment, max_false_unknown=max_false_unknown,
                         outlier_weight=outlier_weight, patience=patience, seed=seed,
                         cache_root=cache_root)
    out_dir = Path(out_dir or Path("models") / name)
    try:
        card = train_model_dir(data_dir, out_dir, config, name=name, command=_command_line(data_dir, out_dir, config, name, loco),
                               loco=loco, progress_factory=_bar, log=lambda m: click.echo(m, err=True))
    except ERRORS as exc:
        _fail(exc)
    click.echo(f"wrote {out_dir} (labels {', '.join(card['labels'])}, "
               f"unknown threshold {card['unknown_threshold']:.4f})")
    m = card.get("metrics") or {}
    if m:
        click.echo(f"held-out: top-1 {m['top1']}, false unknown {m['false_unknown_rate']}, "
                   f"outsiders flagged unknown {m['unknown_rejection_rate']}")


@evaluate_cli.command("classifier")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where report.json, confusion.png and training_curve.png go (default runs/eval-<model>).")
def evaluate_classifier_command(model_dir, data_dir, out_dir):
    """Top-1/top-5, per-class precision/recall and unknown rejection of MODEL_DIR on DATA_DIR (its test/)."""
    from app.training import classifier_eval
    out_dir = Path(out_dir or Path("runs") / f"eval-{Path(model_dir).name}")
    try:
        folder = classifier_eval.test_folder(data_dir)
        n = sum(1 for p in Path(folder).rglob("*") if p.is_file())
        with _bar(n, "evaluating") as bar:
            report = classifier_eval.evaluate_model_dir(model_dir, data_dir, out_dir, bar.update)
    except ERRORS as exc:
        _fail(exc)
    click.echo(f"{report['cast_faces']} cast faces: top-1 {report['top1']}, top-5 {report['top5']}, "
               f"wrongly flagged unknown {report['false_unknown_rate']}; "
               f"{report['outside_faces']} faces outside the cast: flagged unknown "
               f"{report['unknown_rejection_rate']}")
    for label, pc in report["per_class"].items():
        click.echo(f"  {label}: precision {pc['precision']}, recall {pc['recall']} ({pc['support']} faces)")
    click.echo(f"report: {out_dir}/report.json, {out_dir}/confusion.png, {out_dir}/training_curve.png")
