#!/usr/bin/env bash
# bench/gpu_check.sh [ARGS...]: the GPU check, ready to run on a bare machine with this repo.
#
# On a CUDA machine: a two-stream training step in fp32 and in bf16 autocast and two-stream
# inference (GTEA preset networks, 2 videos of 1000 frames), each compared with the CPU result
# to the tolerances in bench/gpu_check.py, with timings; then, reported but not judged, K = 4
# DDIM samples against one and folder batching against one video at a time on the device
# (the sampling throughput goals: K = 4 at most 2.5x one sample, batching 1.5x the videos/s); one JSON object on stdout (also when a
# comparison fails or a step raises), exit 0 when all pass, 1 when one fails, 124 on timeout.
# Without a CUDA device it prints {"status": "skipped", ...} and exits 0.
# ARGS go to bench/gpu_check.py (--frames N, --repeats N, --device cuda:N, --sampling-frames N,
# --folder-videos N, --folder-frames LOW:HIGH).
# Environment: PYTHON (default python3), GPU_CHECK_TIMEOUT (seconds for the check, default 240),
# GPU_CHECK_SETUP_TIMEOUT (seconds for scripts/setup.sh when the package is missing, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LIMIT=${GPU_CHECK_TIMEOUT:-240}
SETUP_LIMIT=${GPU_CHECK_SETUP_TIMEOUT:-600}

status() {  # status NAME MESSAGE: one JSON line (the message must not hold a double quote)
    printf '{"benchmark": "gpu_check", "status": "%s", "message": "%s"}\n' "$1" "$2"
}

if ! command -v "$PY" >/dev/null 2>&1; then
    status error "no $PY on PATH; set PYTHON to a Python 3.10+ interpreter"
    exit 1
fi
# torch first: a CUDA build is usually preinstalled on GPU machines and scripts/setup.sh keeps
# it (its .venv then sees the interpreter's packages); set-up's environment is used from then on.
setup() {
    local py
    if py=$(timeout "$SETUP_LIMIT" bash scripts/setup.sh demo --print-python); then PY=$py; fi
}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "gpu_check: no torch installed; running scripts/setup.sh" >&2
    setup || true
fi
rc=0
cuda=$(timeout 120 "$PY" -c "import torch; print(torch.cuda.is_available() and torch.cuda.device_count())" 2>/dev/null) || rc=$?
if [ "$rc" -ne 0 ]; then
    status skipped "torch does not import or CUDA initialisation failed or hung (exit $rc); no GPU check run"
    exit 0
fi
if [ "$cuda" = "False" ] || [ "$cuda" = "0" ] || [ -z "$cuda" ]; then
    status skipped "no CUDA device visible to torch (torch.cuda.is_available() is false); no GPU check run"
    exit 0
fi
# the package: installed, or from this checkout's src/, or installed now
if ! "$PY" -c "import twostream_das" >/dev/null 2>&1; then
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    if ! "$PY" -c "import twostream_das, omegaconf, scipy, tqdm" >/dev/null 2>&1; then
        echo "gpu_check: installing the package (scripts/setup.sh)" >&2
        setup || true
        if ! "$PY" -c "import twostream_das, omegaconf, scipy, tqdm" >/dev/null 2>&1; then
            status error "the package's dependencies are not installed and scripts/setup.sh could not install them (offline?)"
            exit 1
        fi
    fi
fi
rc=0
timeout "$LIMIT" "$PY" bench/gpu_check.py "$@" || rc=$?
if [ "$rc" -eq 124 ]; then
    status timeout "bench/gpu_check.py ran past GPU_CHECK_TIMEOUT=$LIMIT s"
fi
exit "$rc"
