"""One source for defaults (issue 29, item 4): app/config.py's DEFAULTS are the only place a default
lives. docker-compose.yml, the Dockerfile and the README may quote a default or make a deliberate,
named container choice (CONTAINER_CHOICES); anything else they write must equal the app's own."""
import json
import re
import shlex

import yaml
from conftest import ROOT

from app.config import DEFAULTS

# Settings the container sets on purpose to something else than the app's default, and why.
CONTAINER_CHOICES = {
    "PROXY_FIX": "nginx sits in front of gunicorn in the compose deployment",
    "MODEL_DIR": "the image's own models folder",
    "REPORT_DIR": "the reports volume's mount point",
}
# Other variables that must quote an app default: OpenCV's decoder limit is the app's pixel limit.
QUOTES = {"OPENCV_IO_MAX_IMAGE_PIXELS": "MAX_IMAGE_PIXELS"}


def as_app_reads(text):
    """A FLASK_* value as the app reads it (Flask's from_prefixed_env: JSON where it parses)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        value = text
    return value if value not in ("", [], None) else None  # "nothing": unset, empty or none


def same(value, default):
    return as_app_reads(value) == (default if default not in ("", [], None) else None)


def compose_environment(service):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose["services"][service]["environment"]


def compose_default(value):
    """The value a compose entry gives when nothing overrides it: ${VAR:-default} -> default;
    None: listed without a value, passed only when set (the app's default applies otherwise)."""
    if value is None:
        return None
    return re.sub(r"\$\{\w+(?::-([^}]*))?\}", lambda m: m.group(1) or "", str(value))


def dockerfile_env():
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = text.rsplit("\nFROM ", 1)[-1]  # the last stage: the image that runs
    env = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def test_compose_quotes_the_apps_defaults():
    for service in ("app", "worker"):
        for key, value in compose_environment(service).items():
            setting = QUOTES.get(key) or key.removeprefix("FLASK_")
            if not key.startswith("FLASK_") and key not in QUOTES or setting in CONTAINER_CHOICES:
                continue
            given = compose_default(value)
            assert given is None or same(given, DEFAULTS[setting]), \
                f"docker-compose.yml {service}: {key} defaults to {given!r}; the app's default is {DEFAULTS[setting]!r}"


def test_compose_leaves_the_model_choice_to_the_app():
    # The issue: compose once served demo-cutout while the app's default was isnet-anime.
    for service in ("app", "worker"):
        env = compose_environment(service)
        assert env["FLASK_CUTOUT_MODEL"] is None and env["FLASK_CLASSIFIER_MODEL"] is None


def test_the_dockerfile_quotes_the_apps_defaults():
    env = dockerfile_env()
    assert env, "no ENV found in the Dockerfile's last stage"
    for key, value in env.items():
        setting = QUOTES.get(key) or (key.removeprefix("FLASK_") if key.startswith("FLASK_") else None)
        if setting is None or setting in CONTAINER_CHOICES:
            continue
        assert same(value, DEFAULTS[setting]), f"Dockerfile: {key}={value}; the app's default is {DEFAULTS[setting]!r}"


def readme_rows(section):
    """(names, default cell) of each FLASK_ row of a README settings table under `### section`."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"### {section}\n", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`FLASK_"):
            rows.append((re.findall(r"`FLASK_(\w+)`", cells[0]), cells[1]))
    return rows


def quoted(cell, count):
    """The backticked values of a default cell (one per name), or None for words ("none", "unset")."""
    if not re.fullmatch(r"`[^`]*`(, `[^`]*`)*", cell):
        return None  # words, maybe naming a setting ("SQLite in `REPORT_DIR`")
    values = re.findall(r"`([^`]*)`", cell)
    return values if len(values) == count else None


def test_the_readme_settings_table_quotes_the_apps_defaults():
    rows = readme_rows("Settings")
    assert len(rows) > 30
    checked = 0
    for names, cell in rows:
        values = quoted(cell, len(names))
        if values is None:
            continue
        for name, value in zip(names, values):
            assert same(value, DEFAULTS[name]), f"README: FLASK_{name} says {value}; the app's is {DEFAULTS[name]!r}"
            checked += 1
    assert checked > 25
    documented = {name for names, _ in rows for name in names}
    missing = sorted(key for key in DEFAULTS if key.startswith("JOB_") and key not in documented)
    assert not missing, f"job settings missing from the README's table: {missing}"


def test_the_readme_container_table_says_what_the_container_gets():
    compose = {key.removeprefix("FLASK_"): compose_default(value) for key, value in compose_environment("app").items()}
    image = {key.removeprefix("FLASK_"): value for key, value in dockerfile_env().items()}
    checked = 0
    for names, cell in readme_rows("Settings in the container"):
        values = quoted(cell, len(names))
        if values is None:
            continue
        for name, value in zip(names, values):
            expected = compose.get(name) if compose.get(name) is not None else image.get(name, DEFAULTS[name])
            assert same(value, as_app_reads(str(expected))), f"README (container): FLASK_{name} says {value}, " \
                                                             f"the container gets {expected!r}"
            checked += 1
    assert checked >= 5
