"""The Docker image and compose file, checked without a Docker engine.

The Dockerfile is parsed for what matters to operators (pinned bases, non-root user, CPU torch,
the shared setup script, health check, no preload), and the exact gunicorn command line the
image runs is started here, with the image's environment, and asked for /healthz.
"""
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from app.config import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
SETUP_SCRIPT = "scripts/setup.sh"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# ---- a small Dockerfile reader ------------------------------------------------------------------

def dockerfile_instructions(text):
    """[(KEYWORD, arguments)] with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments (and parser directives) may sit between continuation lines
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical = (pending + stripped).strip()
        pending = ""
        if logical:
            keyword, _, args = logical.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def stages(instructions):
    """[{"image", "name", "body": [(KEYWORD, args)]}] in order."""
    result = []
    for keyword, args in instructions:
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            result.append({"image": words[0], "name": name, "body": []})
        elif result:
            result[-1]["body"].append((keyword, args))
    return result


def env_of(body):
    """Variables set by ENV instructions (KEY=value form) in one stage."""
    env = {}
    for keyword, args in body:
        if keyword == "ENV":
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def args_of(body):
    """Defaults of ARG instructions in one stage."""
    found = {}
    for keyword, args in body:
        if keyword == "ARG":
            key, _, value = args.partition("=")
            found[key] = value.strip('"')
    return found


@pytest.fixture(scope="module")
def dockerfile():
    return stages(dockerfile_instructions((ROOT / "Dockerfile").read_text()))


@pytest.fixture(scope="module")
def runtime(dockerfile):
    return dockerfile[-1]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def app_service(compose):
    services = compose["services"]
    assert len(services) == 1, "one service: the app"
    return next(iter(services.values()))


def volume_parts(spec):
    """(source, target, mode) of a short-syntax volume; the source may hold ${VAR:-default}."""
    mode = ""
    if spec.rsplit(":", 1)[-1] in ("ro", "rw"):
        spec, mode = spec.rsplit(":", 1)
    source, target = spec.rsplit(":", 1)
    return source, target, mode


def self_hosting_docs():
    """README.md's "## Self-hosting" section (or docs/self-hosting.md while there is no README)."""
    readme = ROOT / "README.md"
    if readme.is_file() and "## Self-hosting" in readme.read_text():
        return readme.read_text().split("## Self-hosting", 1)[1]
    return (ROOT / "docs" / "self-hosting.md").read_text()


def runs(stage):
    return [args for keyword, args in stage["body"] if keyword == "RUN"]


# ---- Dockerfile ----------------------------------------------------------------------------------

def test_base_images_are_pinned_versions(dockerfile):
    stage_names = {s["name"] for s in dockerfile if s["name"]}
    for stage in dockerfile:
        image = stage["image"]
        if image in stage_names:
            continue
        assert ":" in image, f"{image}: no tag"
        tag = image.split(":", 1)[1].split("@")[0]
        assert "latest" not in tag, image
        assert re.match(r"^\d+\.\d+\.\d+-", tag), f"{image}: pin a full version, not a moving tag"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", dockerfile[-1]["image"])


def test_node_stage_builds_front_end_from_the_lock_file(dockerfile):
    node = [s for s in dockerfile if s["image"].startswith("node:")]
    assert len(node) == 1 and node[0]["name"]
    body = node[0]["body"]
    copied = " ".join(args for keyword, args in body if keyword == "COPY")
    assert "package.json" in copied and "package-lock.json" in copied
    assert any(re.search(r"\bnpm ci\b", run) for run in runs(node[0])), "npm ci installs the lock file"
    # The runtime stage uses those packages during setup without copying node_modules into a layer.
    assert any(f"from={node[0]['name']}" in run and "node_modules" in run for run in runs(dockerfile[-1]))


def test_runs_as_a_non_root_user(runtime):
    users = [args for keyword, args in runtime["body"] if keyword == "USER"]
    assert users, "no USER: the app would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # USER comes after the last RUN, so nothing later quietly needs root.
    keywords = [keyword for keyword, _ in runtime["body"]]
    assert max(i for i, k in enumerate(keywords) if k == "RUN") < keywords.index("USER")
    assert any(f"--uid {user}" in run for run in runs(runtime)), "the user is created with that uid"


def test_torch_comes_from_the_cpu_index_before_setup(runtime):
    run_lines = runs(runtime)
    torch_at = next(i for i, run in enumerate(run_lines) if "torch==" in run)
    setup_at = next(i for i, run in enumerate(run_lines) if SETUP_SCRIPT in run)
    assert torch_at < setup_at, "torch must be satisfied before setup.sh installs requirements.txt"
    arg = args_of(runtime["body"])
    assert arg["TORCH_INDEX_URL"] == CPU_INDEX
    assert "--index-url" in run_lines[torch_at] and "TORCH_INDEX_URL" in run_lines[torch_at]
    # Same version as requirements.txt, else pip swaps in the CUDA build from PyPI.
    pinned = re.search(r"^torch==(\S+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert arg["TORCH_VERSION"] == pinned


def test_image_uses_the_setup_script_the_readme_and_ci_use(runtime):
    assert (ROOT / SETUP_SCRIPT).is_file()
    setup_runs = [run for run in runs(runtime) if SETUP_SCRIPT in run]
    assert len(setup_runs) == 1
    assert "--dev" not in setup_runs[0], "the image gets the runtime setup, not the test tools"
    assert SETUP_SCRIPT in self_hosting_docs()
    # CI: .ci/run, and the scripts it hands over to (scripts/test.sh runs setup.sh --dev).
    ci = ROOT / ".ci" / "run"
    if ci.is_file():
        texts = [ci.read_text()]
        for script in re.findall(r"scripts/[\w.-]+\.sh", texts[0]):
            if (ROOT / script).is_file():
                texts.append((ROOT / script).read_text())
        assert any(SETUP_SCRIPT in text for text in texts)


def test_official_weights_are_a_build_choice(runtime):
    arg = args_of(runtime["body"])
    assert arg["WEIGHTS"] == "demo", "the default build downloads nothing beyond packages"
    assert any("flask --app wsgi models download" in run and "official" in run for run in runs(runtime))
    # The names and options the build passes exist in the command it runs.
    from app import create_app
    from app.storage.official import MANIFEST
    assert set(arg["OFFICIAL_MODELS"].split()) <= set(MANIFEST)
    result = create_app().test_cli_runner().invoke(args=["models", "download", "--help"])
    assert result.exit_code == 0 and "--allow-unverified" in result.output


def test_environment_limits_threads_and_opencv_pixels(runtime):
    env = env_of(runtime["body"])
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
    assert int(env["OPENCV_IO_MAX_IMAGE_PIXELS"]) == DEFAULTS["MAX_IMAGE_PIXELS"]
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "PORT"):
        assert int(env[name]) > 0


def test_healthcheck_asks_healthz_with_python(runtime):
    checks = [args for keyword, args in runtime["body"] if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0].split(" CMD ", 1)[1])
    assert command[0] == "python", "the slim image has no curl or wget"
    assert "/healthz" in command[-1]


def test_cmd_is_gunicorn_without_preload(runtime):
    command = json.loads([args for keyword, args in runtime["body"] if keyword == "CMD"][-1])
    assert command[0] == "gunicorn" and command[-1] == "wsgi:app"
    assert "--preload" not in command
    assert command[command.index("--config") + 1] == "gunicorn.conf.py"


def test_gunicorn_config_reads_the_environment(monkeypatch):
    import runpy
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    monkeypatch.setenv("GUNICORN_THREADS", "4")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "77")
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("WEB_CONCURRENCY", "")  # restored afterwards; the config overwrites it
    monkeypatch.delenv("GUNICORN_BIND", raising=False)
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (settings["workers"], settings["threads"], settings["timeout"]) == (3, 4, 77)
    assert settings["bind"] == "0.0.0.0:8123"
    assert settings["preload_app"] is False
    assert settings["control_socket_disable"] is True, "no socket under the read-only $HOME"
    assert os.environ["WEB_CONCURRENCY"] == "3", "the app divides cores by the real worker count"


# ---- .dockerignore ---------------------------------------------------------------------------------

def ignore_patterns():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def pattern_regex(pattern):
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def docker_ignores(path):
    """Whether Docker leaves `path` out of the build context (last matching pattern wins;
    a pattern that matches a parent folder covers everything inside it)."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in ignore_patterns():
        negate = pattern.startswith("!")
        regex = pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".cache/demo_cast/x.png", "user_report/abc.json", "node_modules/x/y.js",
    "static/vendor/opencv.js", "data/faces/a.png", "runs/1/log.txt", "models/official/u2net.pth",
    ".git/HEAD", "app/__pycache__/x.pyc", "local-models/my-cast/card.json",
])
def test_dockerignore_keeps_out_user_data_and_caches(path):
    assert docker_ignores(path)


def test_dockerignore_keeps_what_the_image_needs(runtime):
    needed = ["app/__init__.py", "app/config.py", "wsgi.py", "gunicorn.conf.py", SETUP_SCRIPT,
              "scripts/vendor_assets.py", "requirements.txt", "package.json", "package-lock.json",
              "templates/index.html", "static/app.js", "models/demo-classifier/card.json",
              "models/demo-cutout/card.json"]
    for folder in ("app", "templates", "static", "models/demo-classifier", "models/demo-cutout"):
        needed += [str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
                   if p.is_file() and "vendor" not in p.parts and "__pycache__" not in p.parts]
    for keyword, args in runtime["body"]:
        if keyword == "COPY" and "--from" not in args:
            needed += [src for src in args.split()[:-1] if src != "."]
    for path in needed:
        assert not docker_ignores(path), path
    copied = [args for keyword, args in runtime["body"] if keyword == "COPY"]
    assert ". ." in copied, "the app is copied as a whole, filtered by .dockerignore"


# ---- docker-compose.yml ------------------------------------------------------------------------------

def test_compose_keeps_reports_in_a_named_volume(compose, app_service, runtime):
    report_dir = env_of(runtime["body"])["FLASK_REPORT_DIR"]
    mounts = [volume_parts(v) for v in app_service["volumes"]]
    named = [m for m in mounts if m[1] == report_dir]
    assert named, f"nothing mounted on {report_dir}"
    assert named[0][0] in compose["volumes"], "a named volume survives re-creating the container"


def test_compose_mounts_extra_models_read_only(app_service):
    mounts = [volume_parts(v) for v in app_service["volumes"]]
    assert any(target == "/models" and mode == "ro" and "/" in source for source, target, mode in mounts)
    assert "/models/" in self_hosting_docs(), "the docs say how to use that mount"


def test_compose_runs_boringly(app_service):
    assert app_service["restart"] in ("unless-stopped", "always")
    assert app_service["deploy"]["resources"]["limits"]["memory"]
    assert any(str(port).endswith(":8000") for port in app_service["ports"])
    image = app_service["image"]
    assert ":" in image and not image.endswith(":latest")
    assert app_service["build"]["context"] == "."
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_TIMEOUT"):
        assert name in app_service["environment"]
    env = app_service["environment"]
    assert env["FLASK_MAX_IMAGE_PIXELS"] == env["OPENCV_IO_MAX_IMAGE_PIXELS"]


# ---- the image's command line, run here -----------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz_status(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except OSError:
        return None


def test_image_command_serves_healthz(runtime, tmp_path):
    """gunicorn as the image runs it (its CMD, config file and ENV), on loopback."""
    env = dict(os.environ)
    env.update({k: v for k, v in env_of(runtime["body"]).items() if k not in ("PATH", "VIRTUAL_ENV")})
    port = free_port()
    env.update(PORT=str(port), GUNICORN_BIND=f"127.0.0.1:{port}",
               FLASK_MODEL_DIR=str(ROOT / "models"), FLASK_REPORT_DIR=str(tmp_path))
    command = json.loads([args for keyword, args in runtime["body"] if keyword == "CMD"][-1])
    bin_dir = Path(sys.executable).parent
    command[0] = str(bin_dir / command[0])
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while healthz_status(port) != 200:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "no 200 from /healthz within 60 s"
            time.sleep(0.3)

        # The image's HEALTHCHECK command, as Docker would run it.
        check = json.loads([a for k, a in runtime["body"] if k == "HEALTHCHECK"][0].split(" CMD ", 1)[1])
        check[0] = str(bin_dir / check[0])
        assert subprocess.run(check, env=env, timeout=10).returncode == 0

        # No preload: the master never imported the app, so torch is not mapped into it.
        maps = Path(f"/proc/{server.pid}/maps")
        if maps.exists():
            assert "libtorch" not in maps.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert server.returncode == 0, output
    assert "[ERROR]" not in output, output
    assert "Shutting down" in output or "Handling signal" in output
    assert subprocess.run(check, env=env, timeout=10, capture_output=True).returncode != 0


def test_docs_explain_every_setting_the_compose_file_reads(app_service):
    docs = self_hosting_docs()
    compose_text = (ROOT / "docker-compose.yml").read_text()
    names = set(re.findall(r"\$\{(\w+)", compose_text)) | set(app_service["environment"])
    names -= {"FLASK_MAX_IMAGE_PIXELS", "OPENCV_IO_MAX_IMAGE_PIXELS"}  # both set from MAX_IMAGE_PIXELS
    missing = sorted(name for name in names if f"`{name}`" not in docs)
    assert not missing, f"not in the Self-hosting docs: {missing}"
