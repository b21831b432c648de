#!/usr/bin/env bash
# The test suite, on a fresh machine: set-up (scripts/setup.sh test: the package and its `dev`
# extra in the active environment, else .venv here), then pytest with any arguments given here
# (default: the quick suite; `-m slow` for the slow checks).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(bash scripts/setup.sh test --print-python)
exec "$PY" -m pytest -q "$@"
