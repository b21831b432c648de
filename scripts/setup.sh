#!/usr/bin/env bash
# One-step set-up: the CPU build of PyTorch first (a bare `torch` requirement would pull a
# multi-GB CUDA build), then this package with its test tools. GPU users: install the torch
# wheel for your CUDA from pytorch.org first, or set TORCH_SPEC; this script keeps a working torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if ! "$PY" -c "import torch" 2>/dev/null; then
    # On machines whose pip has no local CPU wheel, the CPU index is the one to use.
    "$PY" -m pip install "$TORCH_SPEC" || \
        "$PY" -m pip install "$TORCH_SPEC" --index-url https://download.pytorch.org/whl/cpu
fi
# Already installed from this checkout with this pyproject.toml, extras included: nothing to do
# (the demo and test scripts call this every time).
HERE=$(pwd -P)
STAMP=.setup-stamp
WANT=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && "$PY" - "$HERE" 2>/dev/null <<'PYEOF'
import sys, pathlib
import twostream_das, pytest, av, cv2  # noqa: F401  the package and its dev/video extras
root = pathlib.Path(sys.argv[1]) / "src"
sys.exit(0 if root in pathlib.Path(twostream_das.__file__).resolve().parents else 1)
PYEOF
then
    exit 0
fi
"$PY" -m pip install -e ".[dev,video]"
echo "$WANT" > "$STAMP"
