#!/usr/bin/env bash
# One setup for a fresh Debian machine, CI and the Docker image:
#   scripts/setup.sh            runtime: .venv, Python packages, front-end assets, face cascade
#   scripts/setup.sh --dev      also test tools, Debian Chromium/chromedriver/ffmpeg/PostgreSQL, demo-cast art
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
  command -v npm >/dev/null || need+=(nodejs npm)
  "$PY" -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
  if [ "$DEV" = 1 ]; then
    for pkg in chromium chromium-driver ffmpeg; do
      dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    # PostgreSQL binaries: the storage tests start a private server on a temporary folder.
    command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
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
  if [ "$DEV" = 1 ]; then $PIP install -r requirements-dev.txt; else $PIP install -r requirements.txt; fi
  PYBIN="$VENV/bin/python"
else
  PYBIN=${PYBIN:-python3}
fi

step "Front-end assets (npm) into static/vendor"
"$PYBIN" scripts/vendor_assets.py

if [ "$DEV" = 1 ]; then
  step "Demo cast (Ren'Py sprites from Debian) into .cache/demo_cast"
  "$PYBIN" -m flask --app wsgi demo fetch
fi
step "Setup complete"
