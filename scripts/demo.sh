#!/usr/bin/env bash
# The main job on the embedded demo dataset, on a fresh machine: set-up (scripts/setup.sh demo:
# the active environment, else .venv here; a second run installs nothing), then
# `twostream-das demo` with any arguments given here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(bash scripts/setup.sh demo --print-python)
exec "$PY" -m twostream_das demo "$@"
