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
"$PY" -m pip install -e ".[dev,video]"
