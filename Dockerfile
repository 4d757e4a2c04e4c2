# syntax=docker/dockerfile:1.7
# Self-hosting image; README.md "Self-hosting" says how to run it.
#   docker compose build                                  demo models only (small, no download)
#   docker compose build --build-arg WEIGHTS=official     also bake official weights (OFFICIAL_MODELS)
# Every step below is scripts/setup.sh or a `flask` command, which CI runs too.

# ---- front-end packages: exactly what package-lock.json says ----------------------------------
FROM node:22.23.2-bookworm-slim AS frontend
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the packages are plain browser files; nothing needs to run at install.
RUN npm ci --no-audit --no-fund --ignore-scripts

# ---- runtime --------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS runtime

# Must equal the torch pin in requirements.txt (tests/test_docker.py checks), or pip would
# replace the CPU build with the multi-gigabyte CUDA build from PyPI.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# demo: only the committed demo models. official: also `flask models download NAME` for each
# name in OFFICIAL_MODELS, into models/official/. U-2-Net's files have no published sha256, so
# adding u2net/u2netp needs DOWNLOAD_OPTIONS="--allow-unverified" (see `flask models download --help`).
ARG WEIGHTS=demo
ARG OFFICIAL_MODELS="inception_v3"
ARG DOWNLOAD_OPTIONS=""

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app

WORKDIR /app

# The CPU build of torch first, from PyTorch's CPU wheel index (no CUDA libraries in the image).
RUN python -m venv /opt/venv \
 && pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"

# The same setup script as a developer machine and CI: requirements.txt into the venv (torch is
# already satisfied), then the front-end files and face cascade into static/vendor/. node_modules
# is mounted from the frontend stage only for this step, so it never lands in a layer.
COPY requirements.txt package.json package-lock.json ./
COPY scripts/ scripts/
RUN --mount=type=bind,from=frontend,source=/src/node_modules,target=/app/node_modules \
    VENV=/opt/venv scripts/setup.sh

# The app itself (.dockerignore keeps caches, data sets, reports and static/vendor out).
COPY . .

# Fail the build, not the first request, when an import is broken; then bake weights if asked.
RUN python -c "import wsgi" \
 && case "$WEIGHTS" in \
      demo) ;; \
      official) for name in $OFFICIAL_MODELS; do \
                  flask --app wsgi models download "$name" $DOWNLOAD_OPTIONS || exit 1; \
                done ;; \
      *) echo "WEIGHTS must be demo or official, not '$WEIGHTS'" >&2; exit 1 ;; \
    esac \
 && python -m app.inference.backbone_onnx \
 && python -m compileall -q app wsgi.py gunicorn.conf.py \
 && install -d -o 10001 -g 10001 -m 0750 /app/user_report

# Code and models stay root-owned and read-only to the app; only user_report/ is writable.
USER 10001:10001

# One thread per library by default: gunicorn runs several workers; app/config.py gives torch
# CPU cores // workers. OpenCV's pixel limit matches the app's FLASK_MAX_IMAGE_PIXELS default.
ENV OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENCV_IO_MAX_IMAGE_PIXELS=40000000 \
    FLASK_MODEL_DIR=/app/models \
    FLASK_REPORT_DIR=/app/user_report \
    PORT=8000 \
    GUNICORN_WORKERS=2 \
    GUNICORN_THREADS=12 \
    GUNICORN_TIMEOUT=120

EXPOSE 8000

# No curl in the slim image: Python asks /healthz (urlopen raises on any non-2xx answer).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# Workers, threads and timeout come from the environment (gunicorn.conf.py); no --preload:
# each worker loads its models on first use.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
