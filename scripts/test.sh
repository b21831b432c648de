#!/usr/bin/env bash
# The test suite, on a fresh machine: set-up (scripts/setup.sh, a no-op when done), then pytest
# with any arguments given here (default: the quick suite; `-m slow` for the slow checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
PY=${PYTHON:-python3}
"$PY" -m pytest -q "$@"
