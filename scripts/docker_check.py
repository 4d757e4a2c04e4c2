#!/usr/bin/env python3
"""Build the Docker image and prove it works, run the way docker-compose.yml says.

    .venv/bin/python scripts/docker_check.py [--json FILE]

1. Engine: the one DOCKER_HOST (or /var/run/docker.sock) names, when it answers. Otherwise, as
   root, a private dockerd on .cache/docker/data (vfs storage, no iptables, no default bridge, no
   host sysctl changes), stopped at the end; when it cannot start, its log is printed (exit 2).
2. Base images. A private engine has no registry to pull from, so stand-ins for the official
   images are made once and kept: `debootstrap --variant=minbase bookworm` + `docker import` for
   python, then Debian's nodejs/npm and nginx on top of it. The torch CPU wheel and the face
   cascade on this machine are served to the build on loopback (WHEELS_URL, CASCADE_URL).
3. Build the Dockerfile (--network host) twice: the first build's time (cold when the caches
   are empty), the second one's (all cached), and the image's size.
4. Run the services of docker-compose.yml with the settings it gives them (user, read-only root,
   tmpfs, dropped capabilities, no-new-privileges, memory limit, volumes, networks, only nginx
   published) on networks and a volume of this run's own.
5. Check over HTTP through nginx: /healthz, the page and its vendored files, /api/identify,
   /api/cutout, a report, nginx's 413; inside the app container: its user, the read-only root,
   no capabilities; then replace the app container and find the report still there.
6. Remove the containers, networks and volume it made, and stop the engine it started (images
   and build cache stay, under .cache/docker/, for the next run).
"""
import argparse
import contextlib
import fcntl
import functools
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Images, build cache and logs; DOCKER_CHECK_CACHE moves them (e.g. to a bigger disk).
CACHE = Path(os.environ.get("DOCKER_CHECK_CACHE") or ROOT / ".cache" / "docker")
IMAGE = "anime-face-app:check"
WORKER_IMAGE = "anime-face-worker:check"
PYTHON_DEFAULT = "python:3.11.14-slim-bookworm"  # the Dockerfile's PYTHON_IMAGE
# Stand-ins for the official images, made locally (step 2). The "1" is the recipe's version.
LOCAL_PYTHON = "afd-local/python:bookworm-2"
LOCAL_NODE = "afd-local/node:bookworm-2"
LOCAL_NGINX = "afd-local/nginx:bookworm-2"
BASE_TARBALL = "python-bookworm-2.tar"
DEBOOTSTRAP_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
# This machine's CA bundle (it may trust a TLS-inspecting proxy that PyPI and npm are reached
# through). The local base images trust it too, and their tools are pointed at it.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_ENV = ["PIP_CERT", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"]
ON_TOP = {  # image: Debian packages installed on LOCAL_PYTHON
    LOCAL_NODE: "nodejs npm",
    LOCAL_NGINX: "nginx",
}
# A fixed loopback port for the mirror, so the build arguments (and so the cached layers)
# are the same from one run to the next.
MIRROR_PORT = 38517
DEFAULT_SOCKET = Path("/var/run/docker.sock")
VFS_CACHE_LIMIT = 40e9
CASCADE = "lbpcascade_animeface.xml"
# Compose keys this script turns into `docker run` options; any other key is an error, so a new
# setting in docker-compose.yml cannot be silently left out of the check.
HANDLED_KEYS = {"image", "build", "command", "user", "restart", "ports", "volumes", "networks",
                "depends_on", "deploy", "read_only", "tmpfs", "cap_drop", "security_opt",
                "environment", "stop_grace_period", "healthcheck"}


class CheckFailed(Exception):
    """A check did not hold; the message says which and what was seen."""


STEPS = []  # (heading, time.monotonic() when it began)


def step(text):
    STEPS.append((text, time.monotonic()))
    print(f"\n==> {text}", flush=True)


def step_seconds():
    """{heading: seconds} of each step so far (the last one up to now)."""
    ends = [t for _, t in STEPS[1:]] + [time.monotonic()]
    return {text: round(end - start, 1) for (text, start), end in zip(STEPS, ends)}


def note(text):
    print(f"    {text}", flush=True)


# ---- the engine ------------------------------------------------------------------------------------

def cli_has_buildkit(cli):
    """True when this docker CLI can build with BuildKit (its own client before 23, or buildx)."""
    try:
        out = subprocess.run([cli, "version", "--format", "{{.Client.Version}}"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        major = int(out.split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return False
    if major < 23:
        return True
    return subprocess.run([cli, "buildx", "version"], capture_output=True).returncode == 0


def pick_cli():
    """The docker CLI to use: $DOCKER, else the first on PATH or in /usr/bin that has BuildKit."""
    if os.environ.get("DOCKER"):
        return os.environ["DOCKER"]
    for cli in (shutil.which("docker"), "/usr/bin/docker"):
        if cli and os.path.exists(cli) and cli_has_buildkit(cli):
            return cli
    raise CheckFailed("no docker CLI that can build with BuildKit (install docker.io)")


class Engine:
    """A Docker engine: one that runs already, or a private dockerd started (and stopped) here."""

    def __init__(self):
        self.cli = pick_cli()
        self.env = dict(os.environ, DOCKER_BUILDKIT="1")
        self.proc = None
        self.run_dir = None
        self.lock = None
        self.driver = self.data_root = None
        self.description = ""

    def __call__(self, *args, check=True, capture=True, timeout=600, input=None):
        """Run `docker ARGS`; raises CheckFailed with its output when it fails and check is set."""
        result = subprocess.run([self.cli, *map(str, args)], env=self.env, input=input,
                                capture_output=capture, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise CheckFailed(f"docker {' '.join(map(str, args))[:200]} failed "
                              f"({result.returncode}):\n{(result.stdout or '')[-3000:]}"
                              f"{(result.stderr or '')[-3000:]}")
        return result

    def answers(self):
        try:
            return self("version", check=False, timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start(self):
        """Use a running engine, or start the private one; CheckFailed when neither works."""
        if os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET.exists():
            if self.answers():
                self.description = f"running engine at {os.environ.get('DOCKER_HOST', DEFAULT_SOCKET)}"
                return
        if os.geteuid() != 0:
            raise CheckFailed("no Docker engine answers, and starting one needs root")
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.path.exists(dockerd):
            raise CheckFailed("no Docker engine answers and dockerd is not installed: "
                              "run scripts/setup.sh --dev (it installs docker.io)")
        CACHE.mkdir(parents=True, exist_ok=True)
        # One private engine per cache at a time: wait for another check to finish.
        self.lock = open(CACHE / "lock", "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note(f"another docker check holds {CACHE / 'lock'}; waiting for it")
            fcntl.flock(self.lock, fcntl.LOCK_EX)
        # overlay2 where the kernel and filesystem allow it (fast, stores only differences);
        # vfs anywhere else (a full copy of the filesystem per layer: slow and big).
        drivers = os.environ.get("DOCKER_CHECK_STORAGE_DRIVER", "overlay2 vfs").split()
        failures = []
        for driver in drivers:
            try:
                self.start_private(dockerd, driver)
                return
            except EngineFailed as exc:
                failures.append(str(exc))
                note(f"dockerd with the {driver} storage driver did not start")
        self.stop()
        raise EngineFailed("\n\n".join(failures))

    def start_private(self, dockerd, driver):
        """dockerd with `driver` on CACHE/data-DRIVER; EngineFailed with its log when it fails."""
        # Sockets live under a short /tmp path (unix socket paths are limited to 107 bytes).
        self.run_dir = Path(tempfile.mkdtemp(prefix="afd-docker-"))
        socket_path = self.run_dir / "docker.sock"
        log_path = CACHE / f"dockerd-{driver}.log"
        self.data_root = CACHE / f"data-{driver}"
        # No iptables rules, no IP forwarding, no default bridge: nothing on the host changes.
        command = [dockerd, "--storage-driver", driver, "--iptables=false", "--ip-forward=false",
                   "--bridge=none", "--data-root", str(self.data_root),
                   "--exec-root", str(self.run_dir / "exec"),
                   "--pidfile", str(self.run_dir / "docker.pid"),
                   "--host", f"unix://{socket_path}"]
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.env.update(DOCKER_HOST=f"unix://{socket_path}",
                        DOCKER_CONFIG=str(self.run_dir / "config"))  # no registry logins here
        deadline = time.monotonic() + 90
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(keep_lock=True)
                log_text = log_path.read_text(errors="replace")
                raise EngineFailed(f"the private dockerd did not start ({' '.join(command)}); "
                                   f"its log ({log_path}):\n{log_text[-6000:]}")
            time.sleep(0.5)
        self.driver = driver
        self.description = f"private dockerd ({driver} storage) on {self.data_root}, pid {self.proc.pid}"

    def stop(self, keep_lock=False):
        """Stop the private dockerd (it stops its containerd and containers) and release the lock."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only what it started
                self.proc.wait()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # a containerd left behind, if any
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.proc = self.run_dir = None
        if self.lock is not None and not keep_lock:
            self.lock.close()
            self.lock = None

    @property
    def private(self):
        """True when this script started the engine (so no registry, and it is ours to stop)."""
        return self.driver is not None

    def has_image(self, name):
        return self("image", "inspect", name, check=False).returncode == 0


class EngineFailed(CheckFailed):
    """The engine could not start."""


def limit_vfs_cache(engine):
    """vfs keeps a full copy of the filesystem for every layer, and each new build of the app adds
    a few: past VFS_CACHE_LIMIT the data root goes, and the next run starts cold."""
    if engine.driver != "vfs":
        return
    used = int(subprocess.run(["du", "-s", "--block-size=1", str(engine.data_root)],
                              capture_output=True, text=True).stdout.split()[0])
    if used > VFS_CACHE_LIMIT:
        subprocess.run(["rm", "-rf", "--one-file-system", str(engine.data_root)], check=False)
        note(f"removed the vfs data root ({used / 1e9:.0f} GB > {VFS_CACHE_LIMIT / 1e9:.0f} GB)")


# ---- base images made here ---------------------------------------------------------------------

def unmount_below(path):
    """Unmount whatever debootstrap left mounted inside `path` (deepest first)."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    targets = [line.split()[1] for line in mounts]
    for target in sorted((t for t in targets if t.startswith(str(path) + "/")), reverse=True):
        subprocess.run(["umount", "-l", target], check=False)


def pem_blocks(path):
    text = path.read_text() if path.exists() else ""
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)


def add_host_certificates(rootfs):
    """Certificates this machine trusts beyond Debian's own, added to the rootfs's trust store."""
    debian = set(pem_blocks(rootfs / HOST_CA_BUNDLE.relative_to("/")))
    extra = [pem for pem in pem_blocks(HOST_CA_BUNDLE) if pem not in debian]
    for i, pem in enumerate(extra):
        (rootfs / f"usr/local/share/ca-certificates/host-{i}.crt").write_text(pem + "\n")
    if extra:
        subprocess.run(["chroot", str(rootfs), "update-ca-certificates"], check=True,
                       capture_output=True)
    note(f"the base trusts {len(extra)} certificate(s) of this machine beyond Debian's")


def make_python_base(engine):
    """LOCAL_PYTHON from a debootstrap of bookworm (its tarball is cached under .cache/docker)."""
    tarball = CACHE / BASE_TARBALL
    if not tarball.exists():
        if not shutil.which("debootstrap"):
            raise CheckFailed("debootstrap is not installed: run scripts/setup.sh --dev")
        rootfs = CACHE / "rootfs-tmp"
        unmount_below(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)
        mirror = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
        note(f"debootstrap --variant=minbase --include={DEBOOTSTRAP_PACKAGES} bookworm ({mirror})")
        try:
            result = subprocess.run(["debootstrap", "--variant=minbase",
                                     f"--include={DEBOOTSTRAP_PACKAGES}", "bookworm", str(rootfs),
                                     mirror], capture_output=True, text=True)
            if result.returncode != 0:
                raise CheckFailed(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
            add_host_certificates(rootfs)
            # Like the official images: no package lists or downloaded .debs in the base.
            subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs),
                            "--exclude=./var/cache/apt/archives/*.deb",
                            "--exclude=./var/lib/apt/lists/*", "--exclude=./proc/*",
                            "--exclude=./sys/*", "--exclude=./dev/*",
                            "-cf", f"{tarball}.tmp", "."], check=True)
            os.replace(f"{tarball}.tmp", tarball)
        finally:
            unmount_below(rootfs)
            subprocess.run(["rm", "-rf", "--one-file-system", str(rootfs)], check=False)
    with open(tarball, "rb") as data:
        changes = ["--change", 'CMD ["python3"]']
        for name in CA_ENV:
            changes += ["--change", f"ENV {name}={HOST_CA_BUNDLE}"]
        result = subprocess.run([engine.cli, "import", *changes, "-", LOCAL_PYTHON], stdin=data,
                                env=engine.env, capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(f"docker import failed: {result.stderr}")


def make_on_top(engine, name, packages):
    """`name`: LOCAL_PYTHON plus Debian packages (a Dockerfile on stdin, no context)."""
    dockerfile = (f"FROM {LOCAL_PYTHON}\n"
                  "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                  f"--no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*\n")
    engine("build", "--network", "host", "-t", name, "-", input=dockerfile, timeout=1800)


def ensure_base_images(engine, summary):
    """Make the local stand-ins that are missing; records what it made and how long it took."""
    made = {}
    for name in (LOCAL_PYTHON, *ON_TOP):
        if engine.has_image(name):
            continue
        started = time.monotonic()
        if name == LOCAL_PYTHON:
            make_python_base(engine)
        else:
            make_on_top(engine, name, ON_TOP[name])
        made[name] = round(time.monotonic() - started, 1)
        note(f"made {name} in {made[name]} s")
    summary["base_images_made_s"] = made
    # Stand-ins from an older recipe: vfs keeps a full copy of every layer, so drop them.
    current = {LOCAL_PYTHON, *ON_TOP}
    listed = engine("images", "--format", "{{.Repository}}:{{.Tag}}", "afd-local/*").stdout.split()
    for old in sorted(set(listed) - current):
        engine("rmi", old, check=False)
        note(f"removed {old} (an older recipe)")
    for name in (LOCAL_PYTHON, *ON_TOP):
        note(f"{name}: {'made now' if name in made else 'cached'}")


# ---- a loopback mirror of the torch CPU wheel and the cascade ---------------------------------

def torch_version():
    match = re.search(r"^torch==(\S+)", (ROOT / "requirements-build.txt").read_text(), re.M)
    return match.group(1)


def fill_mirror(mirror):
    """Put the torch CPU wheel and the cascade found on this machine into `mirror`.

    Returns (has torch wheel, has cascade). pip finds the wheel through its own configuration
    (find-links); asking for "+cpu" means it never fetches the CUDA build from PyPI instead.
    """
    wheels = mirror / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    version = torch_version()
    if not list(wheels.glob(f"torch-{version}+cpu-*.whl")):
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                                 "--only-binary=:all:", "-d", str(wheels), f"torch=={version}+cpu"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            note(f"no torch {version}+cpu wheel on this machine: the build uses PyTorch's index")
    cascade = mirror / CASCADE
    if not cascade.exists():
        for source in (ROOT / "static" / "vendor" / CASCADE,
                       ROOT.parent / "shared" / "third_party" / "lbpcascade_animeface" / CASCADE):
            if source.exists():
                shutil.copyfile(source, cascade)
                break
        else:
            note(f"no {CASCADE} on this machine (run scripts/setup.sh): the build downloads it")
    return bool(list(wheels.glob(f"torch-{version}+cpu-*.whl"))), cascade.exists()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory):
    """Serve `directory` on 127.0.0.1 (MIRROR_PORT when free); yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", MIRROR_PORT), handler)
    except OSError:
        note(f"port {MIRROR_PORT} is taken: another port (the torch layer's cache will miss)")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ---- build -----------------------------------------------------------------------------------------

def uncached_steps(log):
    """The RUN and COPY steps a BuildKit log (--progress plain) shows as run, not taken from cache."""
    steps = dict(re.findall(r"^#(\d+) (\[[\w-]+ +\d+/\d+\] (?:RUN|COPY) .{0,60})", log, re.M))
    cached = set(re.findall(r"^#(\d+) CACHED$", log, re.M))
    return [text for number, text in steps.items() if number not in cached]


def build(engine, build_args, log_name, image=IMAGE, target=None):
    """One `docker build` (of `target`, else the last stage); returns its wall time in seconds.
    Its log goes to .cache/docker/LOG_NAME."""
    command = ["build", "--network", "host", "--progress", "plain", "-t", image]
    if target:
        command += ["--target", target]
    for key, value in build_args.items():
        command += ["--build-arg", f"{key}={value}"]
    started = time.monotonic()
    result = engine(*command, ROOT, check=False, timeout=3600)
    seconds = round(time.monotonic() - started, 1)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / log_name).write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise CheckFailed(f"docker build failed after {seconds} s:\n{(result.stdout + result.stderr)[-6000:]}")
    return seconds, result.stdout + result.stderr


# ---- compose settings as `docker run` options ------------------------------------------------

def interpolate(value, overrides):
    """`${NAME:-default}` -> overrides[NAME] or the default (the caller's environment and .env
    are ignored: the check runs the file's own defaults)."""
    def replace(match):
        name, default = match.group(1), match.group(3)
        if name in overrides:
            return overrides[name]
        if default is None:
            raise CheckFailed(f"docker-compose.yml: ${{{name}}} has no default")
        return default
    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", replace, str(value))


def seconds_of(duration):
    match = re.fullmatch(r"(\d+)s", str(duration))
    if not match:
        raise CheckFailed(f"docker-compose.yml: cannot read duration {duration!r}")
    return int(match.group(1))


class Deployment:
    """The compose file's services, run with `docker run` under names of this run's own."""

    def __init__(self, engine, compose, images, report):
        self.engine = engine
        self.compose = compose
        self.images = images        # service -> image to run
        self.report = report        # the summary dict
        self.prefix = f"afd-check-{os.getpid()}"
        self.models_dir = Path(tempfile.mkdtemp(prefix="afd-local-models-"))
        self.proxy_port = None
        self.made = {"containers": [], "networks": [], "volumes": []}

    def name(self, thing):
        return f"{self.prefix}-{thing}"

    def create_networks_and_volumes(self):
        for network, spec in (self.compose.get("networks") or {}).items():
            internal = ["--internal"] if (spec or {}).get("internal") else []
            self.engine("network", "create", *internal, self.name(network))
            self.made["networks"].append(self.name(network))
        for volume in self.compose.get("volumes") or {}:
            self.engine("volume", "create", self.name(volume))
            self.made["volumes"].append(self.name(volume))

    def run_options(self, service):
        """`docker run` options for one service, from its compose settings."""
        spec = self.compose["services"][service]
        unknown = set(spec) - HANDLED_KEYS
        if unknown:
            raise CheckFailed(f"docker-compose.yml: {service} uses {sorted(unknown)}, "
                              "which scripts/docker_check.py does not run yet")
        overrides = {"LOCAL_MODELS_DIR": str(self.models_dir)}
        options = ["--name", self.name(service)]
        networks = spec.get("networks", [])
        if networks:
            options += ["--network", self.name(networks[0]), "--network-alias", service]
        for key, value in (spec.get("environment") or {}).items():
            if value is None:  # passed only when set in .env or the shell: the check runs the defaults
                continue
            options += ["-e", f"{key}={interpolate(value, overrides)}"]
        if (spec.get("healthcheck") or {}).get("disable"):
            options.append("--no-healthcheck")
        if "user" in spec:
            options += ["--user", str(spec["user"])]
        if spec.get("read_only"):
            options.append("--read-only")
        for path in spec.get("tmpfs", []):
            options += ["--tmpfs", path]
        for cap in spec.get("cap_drop", []):
            options += ["--cap-drop", cap]
        for opt in spec.get("security_opt", []):
            options += ["--security-opt", opt]
        memory = (((spec.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get("memory")
        if memory:
            options += ["--memory", interpolate(memory, overrides)]
        if "restart" in spec:
            options += ["--restart", spec["restart"]]
        if "stop_grace_period" in spec:
            options += ["--stop-timeout", str(seconds_of(spec["stop_grace_period"]))]
        for volume in spec.get("volumes", []):
            parts = interpolate(volume, overrides).split(":")
            source = parts[0]
            if source in (self.compose.get("volumes") or {}):
                source = self.name(source)
            else:
                source = str((ROOT / source).resolve())
            options += ["-v", ":".join([source, *parts[1:]])]
        for port in spec.get("ports", []):
            # Published on loopback, on a free port: the check never reaches beyond this machine.
            container_port = interpolate(port, overrides).rsplit(":", 1)[1]
            self.proxy_port = free_port()
            options += ["-p", f"127.0.0.1:{self.proxy_port}:{container_port}"]
        command = spec.get("command") or []
        return options, networks[1:], command

    def start(self, service):
        """`docker run -d` the service, then attach its other networks."""
        options, more_networks, command = self.run_options(service)
        self.engine("run", "-d", *options, self.images[service], *command)
        self.made["containers"].append(self.name(service))
        for network in more_networks:
            self.engine("network", "connect", "--alias", service, self.name(network), self.name(service))

    def start_in_order(self):
        """Services in depends_on order (each waits for what it depends on to be healthy)."""
        services = self.compose["services"]
        started = []
        while len(started) < len(services):
            ready = [name for name, spec in services.items() if name not in started
                     and all(need in started for need in (spec.get("depends_on") or {}))]
            if not ready:
                raise CheckFailed(f"docker-compose.yml: depends_on cannot be met for "
                                  f"{sorted(set(services) - set(started))}")
            for service in ready:
                self.start(service)
                self.report.setdefault("started", []).append(service)
                if self.has_healthcheck(service):
                    self.report.setdefault("healthy_after_s", {})[service] = self.wait_healthy(service)
                started.append(service)

    def has_healthcheck(self, service):
        state = json.loads(self.engine("inspect", "-f", "{{json .State}}", self.name(service)).stdout)
        return "Health" in state

    def wait_healthy(self, service, timeout=240):
        """Seconds until Docker reports the container healthy; CheckFailed with its log otherwise."""
        started = time.monotonic()
        seen = []
        while time.monotonic() - started < timeout:
            state = json.loads(self.engine("inspect", "-f", "{{json .State}}", self.name(service)).stdout)
            health = state.get("Health", {}).get("Status")
            if not seen or seen[-1] != health:
                seen.append(health)
            if health == "healthy":
                note(f"{service}: health {' -> '.join(seen)} after {time.monotonic() - started:.0f} s")
                return round(time.monotonic() - started, 1)
            if health == "unhealthy" or not state.get("Running"):
                break
            time.sleep(1)
        raise CheckFailed(f"{service} did not become healthy (states seen: {seen}):\n"
                          + self.logs(service))

    def logs(self, service, lines=80):
        result = self.engine("logs", "--tail", lines, self.name(service), check=False)
        return (result.stdout or "") + (result.stderr or "")

    def exec(self, service, *command, check=True):
        return self.engine("exec", self.name(service), *command, check=check)

    def inspect(self, service, template):
        return json.loads(self.engine("inspect", "-f", f"{{{{json {template}}}}}", self.name(service)).stdout)

    def remove(self):
        """Remove every container, network and volume this run made (images stay)."""
        for container in reversed(self.made["containers"]):
            self.engine("rm", "-f", "-v", container, check=False)
        for network in self.made["networks"]:
            self.engine("network", "rm", network, check=False)
        for volume in self.made["volumes"]:
            self.engine("volume", "rm", "-f", volume, check=False)
        shutil.rmtree(self.models_dir, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- HTTP checks -----------------------------------------------------------------------------------

def png_bytes(width, height, pixel):
    """A PNG (RGB, 8 bit) of pixel(x, y) -> (r, g, b): the check needs no imaging library."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in pixel(x, y))
                    for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def face_picture(size=160):
    """A round light face with two dark eyes on a blue-green gradient (any picture will do)."""
    c = size / 2

    def pixel(x, y):
        if (x - c * 0.7) ** 2 + (y - c * 0.8) ** 2 < (size / 14) ** 2 or \
           (x - c * 1.3) ** 2 + (y - c * 0.8) ** 2 < (size / 14) ** 2:
            return (40, 30, 60)
        if (x - c) ** 2 + (y - c) ** 2 < (size * 0.38) ** 2:
            return (250, 220, 200)
        return (30, 120 + y * 100 // size, 160 + x * 80 // size)
    return png_bytes(size, size, pixel)


def png_header(data):
    """(width, height, colour type) of a PNG; CheckFailed when it is not one."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise CheckFailed(f"not a PNG: {data[:40]!r}")
    width, height, _, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, colour


def multipart(fields, files):
    """(body, content type) for form fields and (field, filename, bytes) files."""
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                     .encode() + value.encode() + b"\r\n")
    for key, filename, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; '
                     f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(url, data=None, content_type=None, timeout=120):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def wait_http(url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if request(url, timeout=5)[0] == 200:
                return
        time.sleep(0.5)
    raise CheckFailed(f"no 200 from {url} within {timeout} s")


def check_http(base, picture, summary):
    """The page, its files, the API and nginx's own limit, through the published proxy."""
    status, headers, body = request(f"{base}/healthz")
    health = json.loads(body)
    expect(status == 200 and health.get("status") == "ok", f"/healthz: {status} {body[:300]!r}")
    expect(all(m.get("available") for m in health.get("models", {}).values()),
           f"/healthz: a model is not available: {health}")
    expect(health.get("face_detection") is True, f"/healthz: no face detection (cascade): {health}")
    note(f"GET /healthz -> 200 {json.dumps(health)[:160]}")

    status, headers, body = request(f"{base}/")
    expect(status == 200 and headers.get_content_type() == "text/html", f"GET /: {status}")
    page = body.decode("utf-8", "replace")
    vendored = sorted(set(re.findall(r'["\'](/static/vendor/[^"\']+)["\']', page)))
    for path in ["/static/vendor/opencv.js", f"/static/vendor/{CASCADE}"]:
        status, _, data = request(base + path)
        expect(status == 200 and len(data) > 1000, f"GET {path}: {status}, {len(data)} bytes")
    note(f"GET / -> 200 ({len(body)} bytes; names {vendored}); opencv.js and the cascade -> 200")

    body, kind = multipart({}, [("faces", "face.png", picture)])
    status, _, data = request(f"{base}/api/identify", body, kind)
    answer = json.loads(data)
    expect(status == 200 and len(answer.get("faces", [])) == 1
           and answer["faces"][0].get("predictions"), f"/api/identify: {status} {data[:300]!r}")
    best = answer["faces"][0]["predictions"][0]
    note(f"POST /api/identify -> 200, best {best['label']} {best['score']:.2f} "
         f"(model {answer.get('model', {}).get('name')})")

    body, kind = multipart({}, [("image", "picture.png", picture)])
    status, headers, data = request(f"{base}/api/cutout", body, kind)
    expect(status == 200 and headers.get_content_type() == "image/png", f"/api/cutout: {status} {data[:300]!r}")
    width, height, colour = png_header(data)
    expect((width, height, colour) == (160, 160, 6), f"/api/cutout: {width}x{height} colour type {colour}")
    note(f"POST /api/cutout -> 200, RGBA PNG {width}x{height}")

    label = f"check-{uuid.uuid4().hex[:8]}"
    body, kind = multipart({"label": label, "predicted": best["label"]}, [("face", "face.png", picture)])
    status, _, data = request(f"{base}/api/reports", body, kind)
    expect(status == 201, f"/api/reports: {status} {data[:300]!r}")
    report_id = json.loads(data)["id"]
    note(f"POST /api/reports -> 201, id {report_id}")

    # A body over client_max_body_size: nginx answers 413 from the header alone, in JSON.
    host, port = base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", "/api/cutout")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(16 * 1024 * 1024 + 1))
    conn.endheaders()
    response = conn.getresponse()
    data = response.read()
    conn.close()
    expect(response.status == 413 and json.loads(data)["error"]["code"] == "too_large",
           f"an oversized body: {response.status} {data[:200]!r}")
    note("POST of 16 MiB + 1 byte -> 413 from nginx (JSON), before any byte of the body")
    summary["checks"] += ["healthz", "page", "vendor_files", "identify", "cutout", "report", "proxy_413"]
    return label, report_id


def check_container(deployment, summary):
    """Inside the app container: its user, read-only root, capabilities, limits, no published port."""
    uid = deployment.exec("app", "id", "-u").stdout.strip()
    expect(uid != "0", "the app runs as root")
    write = deployment.exec("app", "sh", "-c", "touch /app/x", check=False)
    expect(write.returncode != 0 and "Read-only" in write.stderr, f"/app is writable: {write.stderr}")
    tmp = deployment.exec("app", "sh", "-c", "echo x > /tmp/x && rm /tmp/x", check=False)
    expect(tmp.returncode == 0, f"/tmp is not writable: {tmp.stderr}")
    status = deployment.exec("app", "cat", "/proc/1/status").stdout
    caps = dict(line.split(":\t") for line in status.splitlines() if line.startswith("Cap"))
    expect(int(caps["CapEff"], 16) == 0 and int(caps["CapBnd"], 16) == 0, f"capabilities left: {caps}")
    host = deployment.inspect("app", ".HostConfig")
    expect(host["Memory"] > 0 and host["ReadonlyRootfs"], f"no memory limit or writable root: {host}")
    ports = deployment.inspect("app", ".NetworkSettings.Ports") or {}
    expect(not any(ports.values()), f"the app publishes a port: {ports}")
    proxy_uid = deployment.exec("proxy", "sh", "-c", "id -u").stdout.strip()
    note(f"app: uid {uid}, read-only root (/tmp writable), CapEff {caps['CapEff']}, memory limit "
         f"{host['Memory'] // 2**20} MiB, no published port; proxy: uid {proxy_uid}")
    summary["container"] = {"uid": int(uid), "cap_eff": caps["CapEff"], "memory_limit": host["Memory"],
                            "read_only": host["ReadonlyRootfs"], "proxy_uid": int(proxy_uid)}
    summary["checks"] += ["non_root", "read_only_root", "no_capabilities", "memory_limit", "not_published"]


def reports_listed(deployment):
    return deployment.exec("app", "flask", "--app", "wsgi", "reports", "list").stdout


def replace_app(deployment, summary):
    """Stop the app (gracefully), remove it, run a new one on the same volume; nginx restarts."""
    deployment.engine("stop", deployment.name("app"), timeout=120)
    exit_code = deployment.inspect("app", ".State.ExitCode")
    expect(exit_code == 0, f"the app did not stop cleanly (exit {exit_code}):\n{deployment.logs('app')}")
    deployment.engine("rm", deployment.name("app"))
    deployment.made["containers"].remove(deployment.name("app"))
    deployment.start("app")
    summary["healthy_after_s"]["app_replaced"] = deployment.wait_healthy("app")
    # What compose's `depends_on: restart: true` does: nginx looks up the new address.
    deployment.engine("restart", deployment.name("proxy"))
    note("app stopped with exit 0, removed and run again on the same volume; proxy restarted")


# ---- the whole check -------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the summary to this file")
    args = parser.parse_args()
    summary = {"checks": []}
    engine = None
    deployment = None
    exit_code = 0
    try:
        step("Docker engine")
        engine = Engine()
        engine.start()
        note(f"{engine.description}; CLI {engine.cli}")
        summary["engine"] = engine.description

        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        build_args = {}
        # The worker runs the Dockerfile's build stage (torch, for retraining); the app the last.
        images = {"app": IMAGE, "worker": WORKER_IMAGE}
        proxy_image = interpolate(compose["services"]["proxy"]["image"], {})
        if engine.private:
            step("Base images (no registry: local stand-ins, made once)")
            ensure_base_images(engine, summary)
            build_args.update(PYTHON_IMAGE=LOCAL_PYTHON, NODE_IMAGE=LOCAL_NODE)
            proxy_image = LOCAL_NGINX
        images["proxy"] = proxy_image

        step(f"Build {IMAGE} (--network host)")
        mirror = CACHE / "mirror"
        has_torch, has_cascade = fill_mirror(mirror) if engine.private else (False, False)
        with serve(mirror) as url:
            if has_torch:
                # torch from the mirror ("+cpu" exists only there), its dependencies from PyPI.
                build_args.update(WHEELS_URL=f"{url}/wheels/", TORCH_INDEX_URL="https://pypi.org/simple")
            if has_cascade:
                build_args["CASCADE_URL"] = f"{url}/{CASCADE}"
            for key, value in build_args.items():
                note(f"--build-arg {key}={value}")
            first, log = build(engine, build_args, "build.log")
            note(f"first build: {first} s, {len(uncached_steps(log))} RUN/COPY steps run")
            cached, log = build(engine, build_args, "build-cached.log")
            rerun = uncached_steps(log)
            note(f"second build: {cached} s, {len(rerun)} steps run again {rerun}")
            worker_s, _ = build(engine, build_args, "build-worker.log", WORKER_IMAGE, "build")
            note(f"worker image (the build stage): {worker_s} s")
        size = int(engine("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
        worker_size = int(engine("image", "inspect", "-f", "{{.Size}}", WORKER_IMAGE).stdout)
        torch_in_app = engine("run", "--rm", "--entrypoint", "python", IMAGE, "-c",
                              "import importlib.util as u; print(u.find_spec('torch') is not None)").stdout.strip()
        expect(torch_in_app == "False", f"the app's image has torch ({torch_in_app!r})")
        note(f"worker image size: {worker_size / 1e6:.0f} MB; the app's image has no torch")
        summary.update(worker_image_size_bytes=worker_size, app_image_has_torch=False)
        python_image = build_args.get("PYTHON_IMAGE", PYTHON_DEFAULT)
        base = engine("image", "inspect", "-f", "{{.Size}}", python_image, check=False).stdout.strip()
        summary["base_image_size_bytes"] = int(base) if base else None
        note(f"image size: {size / 1e6:.0f} MB" + (f", of which {int(base) / 1e6:.0f} MB is the base "
                                                    f"({python_image})" if base else ""))
        summary.update(build_first_s=first, build_cached_s=cached, image_size_bytes=size,
                       second_build_reran=rerun,
                       proxy_image=proxy_image, build_args=sorted(build_args))

        step("Run the services as docker-compose.yml says")
        deployment = Deployment(engine, compose, images, summary)
        deployment.create_networks_and_volumes()
        deployment.start_in_order()
        base = f"http://127.0.0.1:{deployment.proxy_port}"
        wait_http(f"{base}/healthz")
        note(f"nginx published on {base}; the app only on network {deployment.name('internal')}")

        step("Checks")
        check_container(deployment, summary)
        picture = face_picture()
        label, report_id = check_http(base, picture, summary)
        expect(report_id in reports_listed(deployment), "the report is not in `flask reports list`")

        step("Replace the app container; the report stays")
        replace_app(deployment, summary)
        wait_http(f"{base}/healthz")
        listed = reports_listed(deployment)
        expect(report_id in listed and label in listed, f"the report is gone after replacement:\n{listed}")
        note(f"`flask reports list` in the new container still shows {report_id} ({label})")
        summary["checks"].append("report_survives_replacement")
        step("All checks passed")
    except EngineFailed as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr, flush=True)
        summary["error"] = str(exc)
        exit_code = 2
    except (CheckFailed, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
        print(f"\nFAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        if deployment is not None:
            for service in ("app", "proxy"):
                if deployment.name(service) in deployment.made["containers"]:
                    print(f"--- docker logs {service} ---\n{deployment.logs(service)}", file=sys.stderr)
        summary["error"] = f"{type(exc).__name__}: {exc}"
        exit_code = 1
    finally:
        step("Clean up")
        if deployment is not None:
            deployment.remove()
            note(f"removed {deployment.made}")
        if engine is not None and engine.private:
            engine.stop(keep_lock=True)
            note("stopped the private dockerd")
            limit_vfs_cache(engine)
        if engine is not None:
            engine.stop()  # releases the lock
        summary["step_seconds"] = step_seconds()
        total = sum(summary["step_seconds"].values())
        print(f"\n{total:.0f} s in all: " + ", ".join(f"{k.split(' (')[0]} {v:.0f} s"
                                                  for k, v in summary["step_seconds"].items()))
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
