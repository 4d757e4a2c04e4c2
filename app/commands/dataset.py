"""`flask dataset faces` and `flask dataset demo-faces`: face crop data sets for the classifier."""
import subprocess

import click
from flask.cli import AppGroup

from app.commands.common import ERRORS, bar, command_line, fail

command = AppGroup("dataset", help="Build face data sets from images, videos and reports.")


@command.command("faces")
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
        fail(exc)
    click.echo(f"{stats['written']} crops written to {out_dir} ({stats['duplicates']} near-duplicates "
               f"and {stats['too_small']} tiny faces dropped): "
               + ", ".join(f"{k} {v}" for k, v in sorted(stats["labels"].items())))


@command.command("demo-faces")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--train", "n_train", default=600, show_default=True, type=click.IntRange(1),
              help="Training composites.")
@click.option("--val", "n_val", default=200, show_default=True, type=click.IntRange(1))
@click.option("--test", "n_test", default=400, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--hold-out-val/--no-hold-out-val", default=True, show_default=True,
              help="Move one training expression per character into validation only.")
@click.option("--live2d", "live2d_share", default=0.5, show_default=True, type=click.FloatRange(0, 0.75),
              help="Share of composites showing the Live2D characters (`flask demo render` first); 0 leaves them out.")
@click.option("--non-face", "non_face_share", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Share of cast composites that also give a face-sized crop of no face (background, "
                   "hair, clothes) as _unknown.")
@click.option("--crops", "kinds", default="known", show_default=True,
              help="Comma-separated crop kinds, each face cut every way given: cascade (the detector's own "
                   "box), drawn (boxes a person might drag), known (the known box with a 30% margin).")
def demo_faces_command(out_dir, n_train, n_val, n_test, seed, hold_out_val, live2d_share, non_face_share, kinds):
    """Face crops of the demo cast (and of amoebax outsiders as _unknown) in OUT_DIR/{train,val,test}/."""
    from app.demo_data import outsiders, renpy_cast
    from app.training import demo_faces
    from app.training.crop_kinds import KINDS
    counts = {"train": n_train, "val": n_val, "test": n_test}
    kinds = tuple(k.strip() for k in kinds.split(",") if k.strip())
    if not kinds or set(kinds) - set(KINDS):
        raise click.BadParameter(f"choose from {', '.join(KINDS)}", param_hint="--crops")
    try:
        renpy_cast.fetch(log=lambda m: click.echo(m, err=True))
        outsiders.fetch(log=lambda m: click.echo(m, err=True))
        # About 1.3 faces per composite (a third of the composites show two characters).
        expected = round(sum(counts.values()) * 1.25 * len(kinds))
        with bar(expected, "composing faces") as progress:
            stats = demo_faces.build_demo_faces(
                out_dir, counts, seed, hold_out_val=hold_out_val, live2d_share=live2d_share,
                non_face_share=non_face_share, kinds=kinds,
                command=command_line(),
                on_crop=lambda c: progress.update(1) if progress.pos < expected - 1 else None)
    except (*ERRORS, subprocess.CalledProcessError) as exc:
        fail(exc)
    for split, s in stats.items():
        click.echo(f"{split}: " + ", ".join(f"{k} {v}" for k, v in sorted(s["labels"].items())))
