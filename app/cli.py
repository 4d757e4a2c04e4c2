"""`flask` command groups. Each command is a thin wrapper over a library function."""
import click
from flask.cli import AppGroup

models_cli = AppGroup("models", help="Download and inspect model weights.")
train_cli = AppGroup("train", help="Train the classifier head or the cutout network.")
evaluate_cli = AppGroup("evaluate", help="Evaluate a trained model on held-out data.")
dataset_cli = AppGroup("dataset", help="Build face data sets from images, videos and reports.")
demo_cli = AppGroup("demo", help="The demo cast: Ren'Py sprites from Debian, composed into pictures.")
reports_cli = AppGroup("reports", help="List and export wrong-label reports.")

GROUPS = (models_cli, train_cli, evaluate_cli, dataset_cli, demo_cli, reports_cli)


def init_app(app):
    # Importing the command modules attaches their commands to the groups above.
    from app.training import demo_cast_cli  # noqa: F401
    from app import weights_download  # noqa: F401
    from app import reports_cli  # noqa: F401
    from app.training import classifier_cli  # noqa: F401
    from app.training import cutout_cli  # noqa: F401
    from app.demo_data.live2d.command import render_command
    demo_cli.add_command(render_command)
    for group in GROUPS:
        app.cli.add_command(group)
