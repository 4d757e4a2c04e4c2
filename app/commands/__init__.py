"""The `flask` commands. Each group lives in a module of its own that is imported only when one
of its commands runs, so the web app never loads training code, data engines or torch trainers."""
import importlib

from flask.cli import AppGroup

# command name -> module whose `command` attribute is the click group (or command)
LAZY = {
    "models": "app.commands.models",
    "train": "app.commands.train",
    "evaluate": "app.commands.evaluate",
    "dataset": "app.commands.dataset",
    "demo": "app.commands.demo",
    "reports": "app.commands.reports",
    "cutout": "app.commands.cutout",
    "bench": "app.commands.bench",
    "worker": "app.commands.worker",
    "storage": "app.commands.storage",
    "teach": "app.commands.teach",
}


class LazyCommands(AppGroup):
    """The app's command group: commands in LAZY are imported on first use."""

    def __init__(self, lazy, **kwargs):
        super().__init__(**kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy and name not in self.commands:
            self.add_command(importlib.import_module(self.lazy[name]).command, name)
        return super().get_command(ctx, name)


def init_app(app):
    """Give `app` the lazily loaded command groups."""
    commands = LazyCommands(LAZY, name=app.cli.name)
    for name, command in app.cli.commands.items():  # anything registered before us
        commands.add_command(command, name)
    app.cli = commands
