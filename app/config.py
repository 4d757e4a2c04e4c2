"""Settings with safe defaults; every key can be overridden by a FLASK_<KEY> environment variable."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Git-ignored: fetched art, renders, feature caches. Official weights from elsewhere.
CACHE_ROOT = ROOT / ".cache"
OFFICIAL_DIR = ROOT / "models" / "official"

DEFAULTS = {
    # Where model directories live; CLASSIFIER_MODEL / CUTOUT_MODEL are names under it or paths.
    "MODEL_DIR": "models",
    "CLASSIFIER_MODEL": "demo-classifier",
    # IS-Net fine-tuned on anime (setup builds models/isnet-anime on isnet-general's npm weights;
    # ahead of isnet-general on every held-out set); u2netp-anime (isnet-anime distilled into
    # U2-NetP: the fast choice), isnet-general and demo-cutout stay selectable (?model=NAME).
    "CUTOUT_MODEL": "isnet-anime",
    # The data folder: the SQLite database, pictures of reports and enrolled faces (named by
    # sha256) and retrained models. Report files from before the database are imported from it.
    "REPORT_DIR": "user_report",
    # A database URL (postgresql+psycopg://user@host/db) for several instances; None: SQLite in REPORT_DIR.
    "DATABASE_URL": None,
    # Seconds a request waits for the database (SQLite's lock, a PostgreSQL connection) before it
    # answers 503 storage_unavailable with Retry-After.
    "DATABASE_TIMEOUT": 30,
    # Free bytes below which /healthz reports the report folder's disk as low (degraded).
    "MIN_FREE_BYTES": 64 * 1024 * 1024,
    # Bytes of pictures that pending reports may hold (507 above it until an operator reviews them).
    "REPORT_QUOTA_BYTES": 256 * 1024 * 1024,
    # Operator token for everything that changes characters, reviews or models (None: turned off).
    "ADMIN_TOKEN": None,
    # Existing data set that retraining adds the gallery to (None: the live head's training data).
    "RETRAIN_DATA_DIR": None,
    # Few-shot gallery embeddings: a name under MODEL_DIR or a path (card kind "embedding").
    "EMBEDDING_MODEL": "demo-embedding",
    # The operator's session cookie: never sent by another site's requests, 12 hours long.
    # SESSION_COOKIE_SECURE=true behind a TLS proxy keeps it off plain HTTP.
    "SESSION_COOKIE_NAME": "faces_session",
    "SESSION_COOKIE_SAMESITE": "Strict",
    "SESSION_COOKIE_SECURE": False,
    "PERMANENT_SESSION_LIFETIME": 12 * 3600,
    # Upload limits: bytes per request (Flask answers 413 above it) and decoded pixels per image.
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    "MAX_IMAGE_PIXELS": 40_000_000,
    "MAX_FACES": 16,
    # Budgets per request, not only per picture: decoded pixels across all files of one request
    # (a JPEG decoded at a reduced scale counts at that scale), 413 above it.
    "MAX_REQUEST_PIXELS": 40_000_000,
    # Pictures are scaled down on arrival to what each use needs (aspect kept): face crops for
    # identify (the networks see 224-299 px), cutout input and output, stored report crops.
    "MAX_FACE_PIXELS": 1024 * 1024,
    "MAX_CUTOUT_PIXELS": 2048 * 2048,
    # A cutout asked for at full size (?full=1, the page's "full size" button) may work on up to
    # this many pixels; 0 (the default) keeps every cutout within MAX_CUTOUT_PIXELS.
    "MAX_CUTOUT_FULL_PIXELS": 0,
    "MAX_REPORT_PIXELS": 512 * 512,
    # Reports one client address (an IPv6 /64) may store; "N per minute; M per hour" (limits syntax).
    "REPORT_RATE_LIMIT": "20 per minute; 200 per hour",
    # Wrong operator tokens and failed sign-ins, per client and over all clients (429 beyond them,
    # even for the right token, until the window ends).
    "AUTH_FAILURE_RATE_LIMIT": "10 per minute; 50 per hour",
    "AUTH_FAILURE_GLOBAL_LIMIT": "60 per minute; 600 per hour",
    # Where the rate-limit counters live, shared by all workers; None: a SQLite file in REPORT_DIR.
    "RATELIMIT_STORAGE_URI": None,
    # Origins besides the server's own whose pages may post to the API (e.g. "https://example.org").
    "TRUSTED_ORIGINS": [],
    # Host names this server answers for besides localhost and IP literals (DNS rebinding): e.g.
    # "faces.example.org" or ".example.org" (with subdomains); "*" answers for any. The hosts of
    # TRUSTED_ORIGINS count too.
    "ALLOWED_HOSTS": [],
    # A model that failed to load is retried after this many seconds, doubling up to the maximum
    # (at once when its files change).
    "MODEL_RETRY_SECONDS": 5,
    "MODEL_RETRY_MAX_SECONDS": 300,
    # Cutout models one worker keeps loaded (the default and ?model= choices), least recently used
    # unloaded first: bounds a worker's memory (measured: each isnet-* adds about 0.3 GB of RSS).
    "CUTOUT_MODELS_LOADED": 2,
    # ONNX exports of the backbones (app/build/backbone_export.py), keyed by their weights' sha256.
    "ONNX_DIR": ".cache/onnx",
    # Fair serving (app/web/admission.py), per worker: requests running at once and waiting for a
    # slot, per endpoint; beyond that, or after QUEUE_WAIT seconds waiting, 503 with Retry-After.
    # gunicorn's threads per worker must exceed the sum of slots and queues (gunicorn.conf.py).
    "IDENTIFY_SLOTS": 2,
    "IDENTIFY_QUEUE": 4,
    "CUTOUT_SLOTS": 1,
    "CUTOUT_QUEUE": 1,
    "QUEUE_WAIT": 10.0,
    # Background jobs (app/jobs/): the queue Huey keeps them in. None: a SQLite file in REPORT_DIR
    # (one machine, nothing to run besides `flask worker`); "redis://host:6379/0" for several machines.
    "JOB_QUEUE_URL": None,
    # Batch cutouts (POST /api/jobs): pictures and decoded pixels per job, bytes per submission (the
    # request body; nginx's client_max_body_size must allow it), queued or running jobs per client
    # (429 beyond) and in all (503 beyond), submissions per client, seconds results are kept.
    "JOB_MAX_PICTURES": 50,
    "JOB_MAX_PIXELS": 200_000_000,
    "JOB_MAX_BYTES": 16 * 1024 * 1024,
    "JOB_CLIENT_ACTIVE": 2,
    "JOB_QUEUE_MAX": 100,
    "JOB_RATE_LIMIT": "10 per minute; 100 per hour",
    "JOB_RESULT_SECONDS": 3600,
    # A job whose attempt fails (an error, or its worker stopped) runs again this many more times.
    "JOB_RETRIES": 2,
    # A running job whose worker (on another machine) has not written a heartbeat for this long is
    # taken as lost; a worker on the same machine is checked by its process at once.
    "JOB_LEASE_SECONDS": 60,
    # Animated pictures (GIF, animated WebP, APNG) sent to /api/cutout: refused (413) past frames,
    # seconds, pixels per frame as sent, or frames x pixels after scaling each frame down to
    # ANIMATION_MAX_SIDE on arrival (which bounds a sticker's memory: 60 MP of RGBA is 240 MB).
    # At most ANIMATION_INLINE_FRAMES frames are cut out within the request; more go to the job
    # queue (202 + Location).
    "ANIMATION_MAX_FRAMES": 240,
    "ANIMATION_MAX_SECONDS": 20.0,
    "ANIMATION_MAX_FRAME_PIXELS": 1920 * 1080,
    "ANIMATION_MAX_TOTAL_PIXELS": 60_000_000,
    "ANIMATION_MAX_SIDE": 720,
    "ANIMATION_INLINE_FRAMES": 6,
    # Frames of an animation looked at for faces (spread evenly over it) by /api/animation/characters.
    "ANIMATION_NAME_FRAMES": 24,
    # Teaching a cast (issue 30, app/web/teach.py): one upload's bytes, and pictures when it is several.
    "TEACH_MAX_BYTES": 256 * 1024 * 1024,
    "TEACH_MAX_PICTURES": 2000,
    # torch intra-op threads per worker; None means CPU cores // WORKERS.
    "TORCH_THREADS": None,
    # ONNX Runtime threads of a cutout, per worker; None means every core. A worker runs one cutout
    # at a time (CUTOUT_SLOTS), so a lone cutout gets the whole machine (a 1080p cutout at 768 px:
    # 1031 ms with 2 threads, 1822 ms with 1, on this project's 2 cores); when workers
    # cut out at once their threads share the cores (ONNX Runtime's idle threads sleep).
    "CUTOUT_THREADS": None,
    # ONNX Runtime execution providers, comma-separated in order of preference: a GPU worker (the
    # onnxruntime-gpu package installed instead of onnxruntime) sets
    # "CUDAExecutionProvider,CPUExecutionProvider".
    "ONNX_PROVIDERS": "CPUExecutionProvider",
    # ONNX Runtime's CPU arena: on, it keeps the memory of a forward pass for the next one, so a
    # worker holds IS-Net's activations between requests (about 300 MB at 768 px); off, they are
    # freed after each pass, for 6-8% more CPU time per IS-Net pass (README "Memory of a serving
    # worker").
    "ONNX_CPU_ARENA": False,
    # gunicorn reads WEB_CONCURRENCY for its default worker count; we divide cores by the same number.
    "WORKERS": int(os.environ.get("WEB_CONCURRENCY", "1") or 1),
    # Behind one reverse proxy (the Docker setup) trust exactly one X-Forwarded-* hop.
    "PROXY_FIX": False,
    # Addresses the proxy's requests come from (CIDRs): X-Forwarded-* from anyone else is ignored.
    # Loopback and private networks (a proxy on this host, or Docker's network); narrow it to the
    # proxy's own address where clients on the LAN can reach gunicorn directly.
    "PROXY_TRUSTED": "127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7",
}


def resolve_path(value):
    """A configured path: absolute as given, relative ones against the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else ROOT / path


def model_path(config, key):
    """Directory of the model named by config[key] (a name under MODEL_DIR, or a path)."""
    value = str(config[key])
    if os.sep in value or value.startswith("."):
        return resolve_path(value)
    return resolve_path(config["MODEL_DIR"]) / value


def cutout_threads(config):
    """ONNX Runtime threads for one cutout: configured, else every core this process may use."""
    if config.get("CUTOUT_THREADS"):
        return max(1, int(config["CUTOUT_THREADS"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def torch_threads(config):
    """Threads for torch in one worker process: configured, else cores shared among workers."""
    if config.get("TORCH_THREADS"):
        return max(1, int(config["TORCH_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, int(config.get("WORKERS") or 1)))
