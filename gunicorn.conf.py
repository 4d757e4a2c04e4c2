"""gunicorn settings for the Docker image (`gunicorn --config gunicorn.conf.py wsgi:app`).

Every number comes from an environment variable so operators tune it in docker-compose.yml
without rebuilding; the image runs it as uid 10001, never as root (Dockerfile USER). Models load
lazily in each worker on first use: the app is never imported in the master (no preload), so no
torch state is shared across fork.
"""
import ctypes
import os


def _int(name, default):
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# Loopback unless told otherwise: gunicorn must sit behind a buffering proxy (nginx), because a
# few clients sending a byte a second would hold all of its threads. The image sets
# GUNICORN_BIND=0.0.0.0:8000 inside its own network namespace, which compose keeps internal.
bind = os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{_int('PORT', 8000)}"

# Inference is CPU-bound: about one worker per two cores. Threads must outnumber the admission
# slots and queues (app/config.py: IDENTIFY_*, CUTOUT_*; 8 by default), so that a burst of
# cutouts never holds every thread and identify always reaches its own gate.
workers = _int("GUNICORN_WORKERS", _int("WEB_CONCURRENCY", 2))
threads = _int("GUNICORN_THREADS", 12)
# U2-Net on a large picture takes seconds on a small CPU; the first request also loads models.
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5

# Worker recycling is off by default: a gthread worker that recycles leaves requests sent on its
# kept-alive connections (nginx keeps upstream connections open) unanswered until it exits, up to
# graceful_timeout (31.8 s seen under schemathesis). Memory stays flat without it (README, Speed:
# 10 minutes of mixed load). GUNICORN_MAX_REQUESTS=N recycles after about N requests.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10

# Explicit, because loading in the master would share torch state across forked workers.
preload_app = False

# The heartbeat file on overlayfs can stall workers; /dev/shm is memory-backed in containers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# No runtime control socket (gunicornc): it would live under $HOME, which is read-only in the
# image, and nothing here needs to resize workers at run time.
control_socket_disable = True

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# The app divides CPU cores among workers (app/config.py reads WEB_CONCURRENCY);
# workers inherit the master's environment, so tell it the real count.
os.environ["WEB_CONCURRENCY"] = str(workers)

# The app cannot close a connection itself (gunicorn drops hop-by-hop headers apps set): a body
# over the limit would stay on the connection after its 413. See app/web/gunicorn_hooks.py.
from app.web.gunicorn_hooks import pre_request  # noqa: E402,F401

M_ARENA_MAX = -8  # glibc's mallopt parameter number
MALLOC_ARENAS = 2


def post_fork(server, worker):
    """Cap glibc's malloc arenas in each worker (before its threads start).

    By default every thread may get its own arena (up to 8 per core), and picture-sized buffers
    freed in one arena are not reused by another. Measured with scripts/load.py (2 workers, mixed
    identify and cutout load): RSS per worker 700-820 MB with the default, 450-580 MB with 2
    arenas, flat over the run either way. MALLOC_ARENA_MAX in the environment wins (glibc reads it).
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        pass
