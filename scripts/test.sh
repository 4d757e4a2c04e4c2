#!/usr/bin/env bash
# Set up everything the tests need (idempotent), lint, then run the whole test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/test_api.py -x`.
#   scripts/test.sh --fast   the loop between edits on a machine already set up: no setup, and only
#                            the tests that start nothing (pytest -m "not slow": no browser, server,
#                            database, Docker, model build or training; tests/conftest.py marks them)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fast" ]; then
  shift
  set -- -m "not slow" "$@"
else
  scripts/setup.sh --dev
fi
echo "==> ruff check"
.venv/bin/ruff check .
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
# pytest exits 5 when it collected no tests (e.g. a filter matched nothing): not a failure of the code.
if [ "$status" = 5 ]; then
  echo "pytest collected no tests; treating as success" >&2
  exit 0
fi
exit "$status"
