"""The Docker image and compose file: built and run for real, and read for what operators rely on.

`test_image_builds_and_serves` (marked `docker`) runs scripts/docker_check.py: it builds the
Dockerfile, runs docker-compose.yml's services as the file says (nginx in front, the app on an
internal network, read-only roots, no capabilities, memory limits, the reports volume) and checks
them over HTTP. The other tests read the Dockerfile, compose file, nginx config and .dockerignore,
and start the image's own command line (gunicorn with its config and environment) here.
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
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
sys.path.insert(0, str(ROOT / "scripts"))
import docker_check  # noqa: E402

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


def args_of(body):
    """Defaults of ARG instructions."""
    found = {}
    for keyword, args in body:
        if keyword == "ARG":
            key, _, value = args.partition("=")
            found[key] = value.strip('"')
    return found


def stages(instructions):
    """[{"image", "name", "body": [(KEYWORD, args)]}] in order; ${ARG} in FROM resolved to the
    defaults of the ARGs before the first FROM."""
    global_args = args_of(instructions[:next(i for i, (k, _) in enumerate(instructions) if k == "FROM")])
    result = []
    for keyword, args in instructions:
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            result.append({"image": image, "from": words[0], "name": name, "body": []})
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


def runs(stage):
    return [args for keyword, args in stage["body"] if keyword == "RUN"]


@pytest.fixture(scope="module")
def dockerfile():
    return stages(dockerfile_instructions((ROOT / "Dockerfile").read_text()))


@pytest.fixture(scope="module")
def runtime(dockerfile):
    """The web app's image: the last stage, without torch."""
    return dockerfile[-1]


@pytest.fixture(scope="module")
def build_stage(dockerfile):
    """Where models are made ready for serving (torch), and the workers' image."""
    return next(stage for stage in dockerfile if stage["name"] == "build")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def app_service(compose):
    return compose["services"]["app"]


@pytest.fixture(scope="module")
def proxy_service(compose):
    return compose["services"]["proxy"]


def volume_parts(spec):
    """(source, target, mode) of a short-syntax volume; the source may hold ${VAR:-default}."""
    mode = ""
    if spec.rsplit(":", 1)[-1] in ("ro", "rw"):
        spec, mode = spec.rsplit(":", 1)
    source, target = spec.rsplit(":", 1)
    return source, target, mode


def default(value):
    """A compose value with its ${VAR:-default}s replaced by the defaults."""
    return docker_check.interpolate(value, {})


def self_hosting_docs():
    """README.md's "## Self-hosting" section."""
    return (ROOT / "README.md").read_text().split("## Self-hosting", 1)[1].split("\n## ", 1)[0]


# ---- built and run for real --------------------------------------------------------------------

@pytest.mark.docker
def test_image_builds_and_serves(tmp_path, capsys):
    """scripts/docker_check.py: build, run as compose says, check over HTTP, clean up."""
    summary_path = tmp_path / "summary.json"
    if os.geteuid() != 0 and not (os.environ.get("DOCKER_HOST") or docker_check.DEFAULT_SOCKET.exists()):
        pytest.skip("no Docker engine, and starting one needs root")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "docker_check.py"),
                             "--json", str(summary_path)], capture_output=True, text=True,
                            timeout=40 * 60)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-8000:]
    summary = json.loads(summary_path.read_text())
    with capsys.disabled():  # the CI log shows what was built and checked
        print("\n" + result.stdout)
    assert {"healthz", "page", "vendor_files", "identify", "cutout", "report", "proxy_413",
            "non_root", "read_only_root", "no_capabilities", "memory_limit", "not_published",
            "report_survives_replacement"} <= set(summary["checks"])
    assert summary["container"]["uid"] == 10001 and summary["container"]["proxy_uid"] != 0
    assert summary["container"]["cap_eff"] == "0000000000000000"
    assert summary["container"]["memory_limit"] == 3 * 2**30
    # The app first (the others wait for it to be healthy), then the proxy and the job worker.
    assert summary["started"][0] == "app" and set(summary["started"]) == {"app", "proxy", "worker"}
    assert summary["second_build_reran"] == [], "a step misses the cache on an unchanged tree"
    # 869 MB on the Debian stand-in base (README "Self-hosting"): serving's packages, demo models
    # and the two IS-Nets stored fp16 where exact; torch or SciPy slipping back in would pass 950 MB.
    assert summary["image_size_bytes"] < 950e6, "serving's packages and ready models only"


def test_the_check_runs_every_compose_setting(compose):
    """scripts/docker_check.py turns each compose key into `docker run` options; none is left out."""
    for name, service in compose["services"].items():
        assert set(service) <= docker_check.HANDLED_KEYS, name


def test_a_dockerd_that_cannot_start_fails_loudly_with_its_log(tmp_path, monkeypatch):
    """The check's engine start: a dockerd that exits at once gives EngineFailed with its log."""
    fake = tmp_path / "dockerd"
    fake.write_text("#!/bin/sh\necho 'failed to start daemon: this dockerd is a stand-in' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(docker_check, "CACHE", tmp_path / "cache")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(docker_check, "DEFAULT_SOCKET", tmp_path / "no-engine.sock")
    if os.geteuid() != 0:
        pytest.skip("the private engine is only started as root")
    engine = docker_check.Engine()
    with pytest.raises(docker_check.EngineFailed, match="this dockerd is a stand-in"):
        engine.start()
    assert engine.proc is None and engine.lock is None


# ---- Dockerfile ----------------------------------------------------------------------------------

def test_base_images_default_to_pinned_official_images(dockerfile):
    for stage in dockerfile:
        assert stage["from"].startswith("${"), f"{stage['from']}: a build argument, so it can be swapped"
        image = stage["image"]
        tag = image.split(":", 1)[1]
        assert "latest" not in tag and re.match(r"^\d+\.\d+\.\d+-", tag), f"{image}: pin a full version"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", dockerfile[-1]["image"])
    assert dockerfile[-1]["image"] == docker_check.PYTHON_DEFAULT
    assert re.fullmatch(r"node:\d+\.\d+\.\d+-bookworm-slim", dockerfile[0]["image"])


def test_no_syntax_line_so_no_frontend_is_pulled():
    assert not (ROOT / "Dockerfile").read_text().startswith("# syntax=")


def test_node_stage_builds_front_end_from_the_lock_file(dockerfile):
    node = dockerfile[0]
    copied = " ".join(args for keyword, args in node["body"] if keyword == "COPY")
    assert "package.json" in copied and "package-lock.json" in copied
    assert any(re.search(r"\bnpm ci\b", run) for run in runs(node)), "npm ci installs the lock file"
    # The build stage uses those packages during setup without copying node_modules into a layer.
    build = next(stage for stage in dockerfile if stage["name"] == "build")
    assert any(f"from={node['name']}" in run and "node_modules" in run for run in runs(build))
    for stage in dockerfile[1:]:
        assert not any(f"--from={node['name']}" in args for k, args in stage["body"] if k == "COPY")


def test_runs_as_a_non_root_user(runtime):
    users = [args for keyword, args in runtime["body"] if keyword == "USER"]
    assert users, "no USER: the app would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # USER comes after the last RUN, so nothing later quietly needs root.
    keywords = [keyword for keyword, _ in runtime["body"]]
    assert max(i for i, k in enumerate(keywords) if k == "RUN") < keywords.index("USER")
    assert any(f"--uid {user}" in run for run in runs(runtime)), "the user is created with that uid"
    # The reports folder belongs to that user (a new volume takes its owner from it).
    report_dir = env_of(runtime["body"])["FLASK_REPORT_DIR"]
    assert any(f"-o {user}" in run and report_dir in run for run in runs(runtime))


def test_torch_is_the_cpu_build_installed_before_setup(build_stage):
    run_lines = runs(build_stage)
    torch_at = next(i for i, run in enumerate(run_lines) if "torch==" in run)
    setup_at = next(i for i, run in enumerate(run_lines) if SETUP_SCRIPT in run)
    assert torch_at < setup_at, "torch must be satisfied before setup.sh installs requirements.txt"
    arg = args_of(build_stage["body"])
    assert arg["TORCH_INDEX_URL"] == CPU_INDEX
    torch_run = run_lines[torch_at]
    assert "--index-url" in torch_run and "TORCH_INDEX_URL" in torch_run
    # "+cpu" pins the CPU build wherever it comes from; the build then refuses a CUDA torch.
    assert '"torch==${TORCH_VERSION}+cpu"' in torch_run
    assert "torch.version.cuda is None" in torch_run
    pinned = re.search(r"^torch==(\S+)", (ROOT / "requirements-build.txt").read_text(), re.M).group(1)
    assert arg["TORCH_VERSION"] == pinned == docker_check.torch_version()


def test_the_apps_image_serves_without_torch(runtime, build_stage, compose):
    """The last stage (the web app) installs serving's requirements only and refuses torch; it
    takes the ready models from the build stage; compose runs workers (retraining) on the build stage."""
    assert not re.search(r"^(torch|onnx)==", (ROOT / "requirements.txt").read_text(), re.M)
    installs = [run for run in runs(runtime) if "pip install" in run]
    assert len(installs) == 1 and "requirements.txt" in installs[0] and "requirements-build" not in installs[0]
    assert "find_spec('torch') is not None" in installs[0]
    copies = [args for keyword, args in runtime["body"] if keyword == "COPY"]
    assert copies and all(c.startswith(f"--from={build_stage['name']} /app/") for c in copies)
    copied = {source for c in copies for source in c.split()[1:-1]}
    # What serving reads, and nothing that only builds or trains (recipes, npm and torch files).
    assert {"/app/app", "/app/models", "/app/static", "/app/templates", "/app/.cache/onnx",
            "/app/wsgi.py", "/app/gunicorn.conf.py"} == copied
    worker = compose["services"]["worker"]
    assert worker["build"]["target"] == build_stage["name"] and "build" not in compose["services"]["app"] or \
        compose["services"]["app"]["build"].get("target") in (None, runtime["name"])


def test_image_uses_the_setup_script_the_readme_and_ci_use(build_stage):
    assert (ROOT / SETUP_SCRIPT).is_file()
    setup_runs = [run for run in runs(build_stage) if SETUP_SCRIPT in run]
    assert len(setup_runs) == 1
    assert "--dev" not in setup_runs[0], "the image gets the runtime setup, not the test tools"
    assert "VENDOR_STRICT=1" in setup_runs[0], "a build without the face cascade fails"
    # Every file setup reads is mounted for that step.
    for path in ("requirements.txt", "requirements-build.txt", "package.json", "package-lock.json",
                 SETUP_SCRIPT, "scripts/vendor_assets.py"):
        assert f"source={path},target=/app/{path}" in setup_runs[0]
    assert SETUP_SCRIPT in self_hosting_docs()
    ci = ROOT / ".ci" / "run"
    if ci.is_file():
        texts = [ci.read_text()]
        for script in re.findall(r"scripts/[\w.-]+\.sh", texts[0]):
            if (ROOT / script).is_file():
                texts.append((ROOT / script).read_text())
        assert any(SETUP_SCRIPT in text for text in texts)


def test_official_weights_are_a_build_choice(build_stage):
    arg = args_of(build_stage["body"])
    assert arg["WEIGHTS"] == "demo", "the default build downloads nothing beyond packages"
    assert any("flask --app wsgi models download" in run and "official" in run for run in runs(build_stage))
    # The names and options the build passes exist in the command it runs.
    from app import create_app
    from app.build.official import MANIFEST
    assert set(arg["OFFICIAL_MODELS"].split()) <= set(MANIFEST)
    result = create_app().test_cli_runner().invoke(args=["models", "download", "--help"])
    assert result.exit_code == 0 and "--allow-unverified" in result.output


def test_environment_limits_threads_and_opencv_pixels(runtime):
    env = env_of(runtime["body"])
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
    assert int(env["OPENCV_IO_MAX_IMAGE_PIXELS"]) == DEFAULTS["MAX_IMAGE_PIXELS"]
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_TIMEOUT"):
        assert int(env[name]) > 0
    # Inside its own network namespace; compose keeps that namespace on an internal network.
    assert env["GUNICORN_BIND"] == "0.0.0.0:8000"


def test_healthcheck_asks_healthz_with_python(runtime):
    checks = [args for keyword, args in runtime["body"] if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0].split(" CMD ", 1)[1])
    assert command[0] == "python", "the slim image has no curl or wget"
    assert "/healthz" in command[-1] and "GUNICORN_BIND" in command[-1]


def test_cmd_is_gunicorn_without_preload(runtime):
    command = json.loads([args for keyword, args in runtime["body"] if keyword == "CMD"][-1])
    assert command[0] == "gunicorn" and command[-1] == "wsgi:app"
    assert "--preload" not in command
    assert command[command.index("--config") + 1] == "gunicorn.conf.py"


def test_gunicorn_config_reads_the_environment_and_binds_loopback(monkeypatch):
    import runpy
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    monkeypatch.setenv("GUNICORN_THREADS", "4")
    monkeypatch.setenv("GUNICORN_TIMEOUT", "77")
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("WEB_CONCURRENCY", "")  # restored afterwards; the config overwrites it
    monkeypatch.delenv("GUNICORN_BIND", raising=False)
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (settings["workers"], settings["threads"], settings["timeout"]) == (3, 4, 77)
    assert settings["bind"] == "127.0.0.1:8123", "never all interfaces unless told"
    assert settings["preload_app"] is False
    assert settings["control_socket_disable"] is True, "no socket under the read-only $HOME"
    assert os.environ["WEB_CONCURRENCY"] == "3", "the app divides cores by the real worker count"
    monkeypatch.setenv("GUNICORN_BIND", "10.1.2.3:9000")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == "10.1.2.3:9000"


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
    "models/my-cast/weights.pt", ".git/HEAD", "app/__pycache__/x.pyc",
    "local-models/my-cast/card.json", "tests/test_api.py", "deploy/nginx/nginx.conf",
])
def test_dockerignore_keeps_out_user_data_caches_and_tests(path):
    assert docker_ignores(path)


def test_dockerignore_keeps_what_the_image_needs(build_stage):
    needed = ["app/__init__.py", "app/config.py", "wsgi.py", "gunicorn.conf.py", SETUP_SCRIPT,
              "scripts/vendor_assets.py", "requirements.txt", "package.json", "package-lock.json",
              "templates/index.html", "static/js/main.js", "models/demo-classifier/card.json",
              "models/demo-cutout/card.json", "models/isnet-anime/tuned.pt",
              "models/isnet-anime/tuned.json", "models/u2netp-anime/card.json",
              "models/u2netp-anime/weights.pt"]
    for folder in ("app", "templates", "static", "models/demo-classifier", "models/demo-cutout"):
        # Not build outputs setup leaves in the tree: vendor files, bytecode, compiled catalogs (the
        # image compiles its own .mo from the .po files).
        needed += [str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
                   if p.is_file() and "vendor" not in p.parts and "__pycache__" not in p.parts
                   and p.suffix != ".mo"]
    for run in runs(build_stage):
        needed += re.findall(r"--mount=type=bind,source=([^,]+),target=", run)
    for path in needed:
        assert not docker_ignores(path), path
    copied = [args for keyword, args in build_stage["body"] if keyword == "COPY"]
    assert ". ." in copied, "the app is copied as a whole, filtered by .dockerignore"


# ---- docker-compose.yml ------------------------------------------------------------------------------

def test_only_the_proxy_is_published_and_the_app_is_internal(compose, app_service, proxy_service):
    assert "ports" not in app_service and "expose" not in app_service
    assert app_service["networks"] == ["internal"]
    assert compose["networks"]["internal"]["internal"] is True
    assert set(proxy_service["networks"]) == {"internal", "edge"}
    ports = [default(p) for p in proxy_service["ports"]]
    assert ports == ["127.0.0.1:8000:8080"], "loopback by default, nginx's unprivileged port"
    assert proxy_service["depends_on"]["app"]["condition"] == "service_healthy"


def test_both_services_run_locked_down(app_service, proxy_service):
    for service in (app_service, proxy_service):
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert default(service["deploy"]["resources"]["limits"]["memory"])
        assert service["restart"] in ("unless-stopped", "always")
    assert int(proxy_service["user"].split(":")[0]) != 0


def test_proxy_uses_the_nginx_config_and_keeps_its_files_in_tmpfs(proxy_service):
    mounts = [volume_parts(v) for v in proxy_service["volumes"]]
    assert ("./deploy/nginx/nginx.conf", "/etc/nginx/nginx.conf", "ro") in mounts
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+-bookworm", default(proxy_service["image"]))
    config = NGINX_CONF.read_text()
    # Everything nginx writes lives under the tmpfs: its root filesystem is read-only.
    written = re.findall(r"^\s*(?:pid|\w+_temp_path)\s+(\S+);", config, re.M)
    assert len(written) == 6 and all(path.startswith(proxy_service["tmpfs"][0] + "/") for path in written)
    assert "listen 8080;" in config and "server app:8000;" in config
    assert "-e" in proxy_service["command"] and proxy_service["command"][0] == "nginx"


def test_nginx_limits_match_the_app(app_service):
    config = NGINX_CONF.read_text()
    size = int(re.search(r"client_max_body_size (\d+)m;", config).group(1)) * 2**20
    assert size == int(default(app_service["environment"]["FLASK_MAX_CONTENT_LENGTH"]))
    assert size == DEFAULTS["MAX_CONTENT_LENGTH"]
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", config).group(1))
    assert read_timeout > int(default(app_service["environment"]["GUNICORN_TIMEOUT"]))
    for directive in ("proxy_buffering on;", "proxy_request_buffering on;", "client_header_timeout",
                      "client_body_timeout", "limit_conn per_client", "reset_timedout_connection on;"):
        assert directive in config
    # Exactly one proxy sets X-Forwarded-*, so the app trusts one hop.
    assert default(app_service["environment"]["FLASK_PROXY_FIX"]) == "true"


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


def test_compose_builds_the_app(app_service):
    image = app_service["image"]
    assert ":" in image and not image.endswith(":latest")
    assert app_service["build"]["context"] == "."
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_TIMEOUT"):
        assert name in app_service["environment"]
    env = app_service["environment"]
    assert env["FLASK_MAX_IMAGE_PIXELS"] == env["OPENCV_IO_MAX_IMAGE_PIXELS"]


def test_docs_explain_every_setting_the_compose_file_reads(compose):
    docs = self_hosting_docs()
    compose_text = (ROOT / "docker-compose.yml").read_text()
    names = set(re.findall(r"\$\{(\w+)", compose_text))
    names |= set(compose["services"]["app"]["environment"])
    names -= {"FLASK_MAX_IMAGE_PIXELS", "OPENCV_IO_MAX_IMAGE_PIXELS"}  # both set from MAX_IMAGE_PIXELS
    missing = sorted(name for name in names if f"`{name}`" not in docs)
    assert not missing, f"not in the Self-hosting docs: {missing}"


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
    env.update(GUNICORN_BIND=f"127.0.0.1:{port}", FLASK_MODEL_DIR=str(ROOT / "models"),
               FLASK_REPORT_DIR=str(tmp_path))
    command = json.loads([args for keyword, args in runtime["body"] if keyword == "CMD"][-1])
    bin_dir = Path(sys.executable).parent
    command[0] = str(bin_dir / command[0])
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while healthz_status(port) != 200:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no 200 from /healthz within 60 s"
            time.sleep(0.3)

        # The image's HEALTHCHECK command, as Docker would run it (it finds the port in GUNICORN_BIND).
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
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = log.read_text()
    assert server.returncode == 0, output
    assert "[ERROR]" not in output, output
    assert "Shutting down" in output or "Handling signal" in output
    assert subprocess.run(check, env=env, timeout=10, capture_output=True).returncode != 0


def test_the_worker_runs_queued_jobs_on_the_apps_image_volume_and_settings(compose, app_service):
    worker = compose["services"]["worker"]
    assert worker["command"] == ["flask", "--app", "wsgi", "worker"]
    # The Dockerfile's build stage (torch, for retraining), from the same context and arguments.
    assert worker["build"] == dict(app_service["build"], target="build") and worker["image"] != app_service["image"]
    assert worker["networks"] == ["internal"] and "ports" not in worker
    assert [volume_parts(v) for v in worker["volumes"]] == [volume_parts(v) for v in app_service["volumes"]]
    shared = {k: v for k, v in app_service["environment"].items() if not k.startswith("GUNICORN_")}
    assert worker["environment"] == shared  # the same FLASK_* settings: the same models and queue
    assert worker["healthcheck"] == {"disable": True}  # the image's check asks gunicorn
    assert worker["read_only"] is True and worker["cap_drop"] == ["ALL"] and worker["tmpfs"] == ["/tmp"]
    assert "no-new-privileges:true" in worker["security_opt"]
    assert set(worker) <= docker_check.HANDLED_KEYS
