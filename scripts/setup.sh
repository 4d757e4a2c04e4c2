#!/usr/bin/env bash
# One setup for a fresh Debian machine, CI and the Docker image:
#   scripts/setup.sh            runtime: .venv, Python packages, front-end assets, face cascade
#   scripts/setup.sh --dev      also test tools, Debian Chromium/chromedriver/ffmpeg/PostgreSQL,
#                               demo-cast art, the Live2D models (npm dev dependencies) rendered by
#                               `flask demo render`, and the field bench's art (`flask bench fetch`)
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

step() { printf '\n==> %s\n' "$*"; }

# Debian packages: npm (front-end assets) always; Chromium, chromedriver and ffmpeg for the tests.
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  need=()
  # (The Docker image mounts node_modules from its node stage: no npm needed there.)
  command -v npm >/dev/null || [ -d node_modules ] || need+=(nodejs npm)
  "$PY" -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
  if [ "$DEV" = 1 ]; then
    # fonts-noto-cjk: Chinese and Japanese glyphs in the page's screenshots.
    for pkg in chromium chromium-driver ffmpeg fonts-noto-cjk; do
      dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    # Docker test and reverse-proxy test (tests/test_docker.py, tests/test_proxy.py): a Docker
    # engine, debootstrap for a local base image (no image registry is needed), Debian's nginx.
    # The tests start their own instances; on a machine with systemd, installing also starts both.
    for pkg in docker.io debootstrap nginx; do
      dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    # PostgreSQL binaries: the storage tests start a private server on a temporary folder.
    command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
    # Redis: the job tests start a private redis-server on loopback (tests/queue_support.py).
    command -v redis-server >/dev/null || need+=(redis-server)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    step "Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
fi

if [ "${SKIP_VENV:-0}" != 1 ]; then
  step "Python environment in $VENV"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
  # requirements-build.txt: serving's packages plus torch and onnx, which build the ONNX exports below.
  if [ "$DEV" = 1 ]; then $PIP install -r requirements-dev.txt; else $PIP install -r requirements-build.txt; fi
  PYBIN="$VENV/bin/python"
  PYBABEL=("$VENV/bin/pybabel")
else
  PYBIN=${PYBIN:-python3}
  PYBABEL=("$PYBIN" -m babel.messages.frontend)
fi

# The Docker build runs this script before the app is copied in; it compiles and exports after the copy.
if [ -d app ]; then
  step "Message catalogs (app/translations/*.po) compiled to .mo for Flask-Babel"
  "${PYBABEL[@]}" compile -d app/translations
  step "ONNX exports of the installed backbones, verified against torch (.cache/onnx)"
  "$PYBIN" -m app.build.backbone_export
fi

step "Front-end assets (npm) into static/vendor"
if [ "$DEV" = 1 ]; then "$PYBIN" scripts/vendor_assets.py --dev; else "$PYBIN" scripts/vendor_assets.py; fi

# Cutout networks for ONNX Runtime. app/ is absent in the Docker build's setup stage: the
# Dockerfile runs the same two commands once the app is copied.
if [ -d app ]; then
  step "IS-Net general weights (npm @imgly/background-removal-data) into models/isnet-general"
  [ -f node_modules/@imgly/background-removal-data/package.json ] || npm ci --no-audit --no-fund
  "$PYBIN" -m app.build.isnet_general
  step "Fine-tuned IS-Nets (models/*/tuned.pt on isnet-general) for ONNX Runtime"
  "$PYBIN" -m app.build.isnet_tuned
  step "ONNX exports of the committed cutout models (verified against torch)"
  "$PYBIN" -m app.build.cutout_export models/demo-cutout models/u2netp-anime
fi

if [ "$DEV" = 1 ]; then
  step "Demo cast (Ren'Py sprites from Debian) into .cache/demo_cast"
  "$PYBIN" -m flask --app wsgi demo fetch
  step "The page's sample picture (demo cast) into static/vendor/sample-cast.webp"
  "$PYBIN" -m flask --app wsgi demo sample
  # The Live2D tests (cutout sets, stickers) and the teach tests need these renders; both are
  # resumable (a second run only checks), about 2 minutes and 1 minute the first time.
  step "Live2D sample characters rendered (npm models, Debian Chromium) into .cache/live2d"
  "$PYBIN" -m flask --app wsgi demo render
  step "The field bench's art (Debian wallpapers, unseen Live2D characters) into .cache/field_bench"
  "$PYBIN" -m flask --app wsgi bench fetch
fi
step "Setup complete"
