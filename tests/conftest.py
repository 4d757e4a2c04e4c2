"""Shared fixtures: the app on a temporary report dir, its clients, and real test pictures."""
import contextlib
import inspect
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402

# The page tests' server and browser fixtures (and their helpers, imported by those tests).
pytest_plugins = ["page_support"]

DEMO_CACHE = ROOT / ".cache" / "demo_cast"
MODELS = ROOT / "models"


# What a test starts, read from its own code and the fixtures it uses (their code): each is a
# marker, and each makes the test `slow`. A developer's loop between edits is
# `pytest -m "not slow"` (scripts/test.sh --fast); CI runs everything.
STARTS = {
    "browser": ("webdriver.", "live2d.render("),  # Debian Chromium (page tests; Live2D renders)
    "server": ("gunicorn(", "worker(", "Worker(", "subprocess.", "Popen(", "ThreadingHTTPServer("),
    "postgres": ("postgres_server(",),  # a private PostgreSQL (tests/postgres.py)
    "redis": ("redis_server(",),  # a private Redis (tests/queue_support.py)
    "training": ("train_model_dir(", "cutout_train.train(", "train(cfg", "build_pool(", "fit_head("),
    # a model built: an ONNX export verified against torch, IS-Net converted from its npm file
    "build": ("build_export(", "export_cutout(", "ensure_export(", "export_net(", "torch.onnx.export(",
              "isnet_state_dict(", "build_served(", "isnet_tuned.build("),
}


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: builds and runs the Docker image (minutes; -m 'not docker' skips)")
    for name in STARTS:
        config.addinivalue_line("markers", f"{name}: starts {name} (found from the test's code and fixtures)")
    config.addinivalue_line("markers", "slow: starts a browser, server, database, Docker, a build or training")


def _code(func):
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ""


def pytest_collection_modifyitems(config, items):
    for item in items:
        code = [_code(getattr(item, "function", None))]
        for name in getattr(item, "fixturenames", ()):
            for fixturedef in item._fixtureinfo.name2fixturedefs.get(name, ()):
                code.append(_code(fixturedef.func))
        text = "\n".join(code)
        starts = [name for name, needles in STARTS.items() if any(n in text for n in needles)]
        for name in starts:
            item.add_marker(name)
        if starts or item.get_closest_marker("docker"):
            item.add_marker("slow")


def model_present(name):
    """True when models/<name>/ holds a card."""
    return (MODELS / name / "card.json").is_file()


def _needs(*names):
    missing = [f"models/{n}" for n in names if not model_present(n)]
    return pytest.mark.skipif(bool(missing), reason=f"{' and '.join(missing)} not installed")


needs_classifier = _needs("demo-classifier")
needs_cutout = _needs("demo-cutout")
needs_models = _needs("demo-classifier", "demo-cutout")
needs_isnet = _needs("isnet-general")  # built from npm by scripts/setup.sh
needs_isnet_anime = _needs("isnet-anime")  # built on isnet-general by scripts/setup.sh
needs_u2netp_anime = _needs("u2netp-anime")  # committed; its ONNX export is made by scripts/setup.sh


@pytest.fixture
def report_dir(tmp_path):
    return tmp_path / "reports"


@pytest.fixture
def app(report_dir):
    # TORCH_THREADS=1: the test machine is shared; the real default is cores // workers.
    # demo-cutout: the fast model keeps API tests quick; test_cutout_models.py serves the default.
    return create_app({"TESTING": True, "REPORT_DIR": str(report_dir), "TORCH_THREADS": 1,
                       "CUTOUT_MODEL": "demo-cutout"})


@pytest.fixture
def make_app(report_dir):
    """make_app(**config): apps like `app`'s (demo-cutout, one torch thread) sharing one report
    folder, with config on top; their database connections closed at the end."""
    apps = []

    def make(**config):
        made = create_app({"TESTING": True, "REPORT_DIR": str(report_dir), "TORCH_THREADS": 1,
                           "CUTOUT_MODEL": "demo-cutout", **config})
        apps.append(made)
        return made
    yield make
    from app.storage import db
    for made in apps:
        db.dispose(made)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def read_image(path):
    """A picture file loaded whole and closed (tests run with ResourceWarning as an error)."""
    with Image.open(path) as image:
        image.load()
        return image


def encode(image, fmt="PNG", **options):
    """Bytes of a PIL image or array in `fmt`."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(image)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def demo_picture_array():
    """A demo-cast picture (two characters on a background) in which the cascade finds faces."""
    if not (DEMO_CACHE / "sprites").is_dir():
        pytest.skip("demo cast not fetched: run `scripts/setup.sh --dev` (flask --app wsgi demo fetch)")
    from app.demo_data import compose
    from app.demo_data import renpy_cast as demo_cast
    from app.inference.faces import detect_faces
    sprites = {s.key: s for s in demo_cast.load_sprites(DEMO_CACHE, ("eileen happy", "sylvie blue smile"))}
    backgrounds = demo_cast.load_backgrounds(DEMO_CACHE)
    # A fixed, reproducible search for a composite where both faces are visible and detected.
    for seed in range(40):
        rng = np.random.default_rng(seed)
        size = (960, 640)
        background = compose.photo_crop(rng, backgrounds[sorted(backgrounds)[seed % len(backgrounds)]], size)
        comp = compose.compose(rng, [sprites["eileen happy"], sprites["sylvie blue smile"]], background, size)
        if len(comp.faces) == 2 and len(detect_faces(comp.image)) >= 1:
            return comp
    pytest.skip("no demo composite with a detectable face")


@pytest.fixture(scope="session")
def demo_picture(tmp_path_factory):
    """(path to a PNG of a demo-cast picture, its Composite)."""
    comp = demo_picture_array()
    path = tmp_path_factory.mktemp("demo") / "demo-cast.png"
    path.write_bytes(encode(comp.image))
    return path, comp


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL server for the session; calling the value makes a fresh database URL."""
    from postgres import binaries, postgres_server
    if binaries() is None:
        pytest.skip("PostgreSQL binaries missing: run scripts/setup.sh --dev (Debian's postgresql)")
    with postgres_server() as new_database:
        yield new_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """None (SQLite in the report folder, the default) or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres")()


@contextlib.contextmanager
def tmpfs(folder, size):
    """A real file system of `size` (e.g. "4m") mounted on a new `folder`, unmounted afterwards;
    the test is skipped where mounting is refused."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)
