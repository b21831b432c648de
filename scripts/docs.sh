#!/usr/bin/env bash
# The documentation site: set-up (scripts/setup.sh docs), then `mkdocs build --strict` into
# site/ (open site/index.html), or with `serve` a live preview on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(bash scripts/setup.sh docs --print-python)
if [ "${1:-build}" = serve ]; then
    exec "$PY" -m mkdocs serve
fi
"$PY" -m mkdocs build --strict "$@"
echo "docs: built; open $(pwd -P)/site/index.html" >&2
