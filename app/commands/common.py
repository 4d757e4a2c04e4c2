"""What every command shares: config from a recipe file plus options, the recorded command line,
progress bars on stderr, and one way to turn library errors into a clean CLI error."""
import dataclasses
import json
import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from app.storage.model_dirs import ModelError

# Library errors that mean "bad input or missing data", shown without a traceback.
ERRORS = (FileNotFoundError, FileExistsError, ValueError, RuntimeError, ModelError, OSError)


def fail(exc):
    """Stop the command with the exception's message (exit 1)."""
    raise click.ClickException(str(exc)) from None


@contextmanager
def bar(length, label):
    """A click progress bar on stderr (stdout stays for results)."""
    with click.progressbar(length=length, label=label, file=sys.stderr) as progress:
        yield progress


def recipe_option(func):
    """--config FILE: a JSON recipe of dataclass fields; options given on the command line win."""
    return click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                        default=None, help="JSON recipe with the run's settings (options override it).")(func)


def build_config(cls, config_file, options):
    """An instance of dataclass `cls`: its defaults, then the recipe file, then options that were given.

    Options default to None on the command line, so the dataclass holds the one set of defaults.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {}
    if config_file:
        try:
            values = json.loads(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise click.BadParameter(f"cannot read {config_file}: {exc}", param_hint="--config") from None
        unknown = sorted(set(values) - fields)
        if unknown:
            raise click.BadParameter(f"{config_file} has unknown settings {unknown}; known: "
                                     f"{sorted(fields)}", param_hint="--config")
    values.update({k: v for k, v in options.items() if k in fields and v is not None})
    return cls(**values)


def command_line(ctx=None):
    """The running command as it would be typed, rebuilt from its parsed parameters (recorded in
    cards and run folders, so it reads the same however the command was started)."""
    ctx = ctx or click.get_current_context()
    names = []
    node = ctx
    while node is not None and node.info_name:
        names.append(node.info_name)
        node = node.parent
    parts = ["flask", "--app", "wsgi", *reversed(names[:-1])]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value is False or value == ():
            continue
        if isinstance(param, click.Argument):
            parts += [str(v) for v in (value if isinstance(value, tuple) else (value,))]
        elif param.is_flag:
            parts.append(param.opts[0])
        else:
            for v in value if param.multiple else (value,):
                parts += [param.opts[0], *(str(x) for x in (v if isinstance(v, tuple) else (v,)))]
    return " ".join(shlex.quote(p) for p in parts)
