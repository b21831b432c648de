#!/usr/bin/env bash
# The main job on the embedded demo dataset, on a fresh machine: set-up (scripts/setup.sh, a
# no-op when done), then `twostream-das demo` with any arguments given here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
exec "${PYTHON:-python3}" -m twostream_das demo "$@"
