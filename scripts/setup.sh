#!/usr/bin/env bash
# Set-up for one command of this checkout: bash scripts/setup.sh [demo|test|extract|docs]
#
#   demo     the package alone (default)          test  + the `dev` extra (pytest, selenium, ...)
#   extract  + the `video` extra (PyAV, OpenCV)   docs  + the `docs` extra (MkDocs)
#
# Where it installs: the active virtual environment ($VIRTUAL_ENV) or conda environment
# ($CONDA_PREFIX) when there is one; otherwise `.venv` in this checkout, made with $PYTHON
# (default python3). It never installs into a Python that is not an environment of its own (a
# PEP 668 "externally managed" system Python refuses that) and never uses
# --break-system-packages.
#
# PyTorch: a torch that imports and fits pyproject.toml's range is kept (a `.venv` then sees the
# interpreter's own packages, --system-site-packages, so a CUDA build you installed stays in
# use). Otherwise it installs $TORCH_SPEC (default torch==2.13.0): without an NVIDIA driver (no
# `nvidia-smi`) from PyTorch's CPU wheel index, falling back to the default index when that
# cannot be reached; with one, from the default index (its Linux wheels are CUDA builds).
# TORCH_SPEC / TORCH_INDEX_URL, when set, are installed whatever torch is there.
#
# Options: --print-python prints the environment's interpreter on stdout (the scripts use it);
# everything else goes to stderr. A second run with nothing new to install takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
CPU_INDEX=https://download.pytorch.org/whl/cpu

say() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }

WHAT=demo
PRINT_PYTHON=0
for arg in "$@"; do
    case "$arg" in
        demo | test | extract | docs) WHAT=$arg ;;
        --print-python) PRINT_PYTHON=1 ;;
        -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) die "unknown argument '$arg'; expected demo, test, extract, docs or --print-python" ;;
    esac
done
case "$WHAT" in
    demo) EXTRAS="" ; MODULES="twostream_das" ;;
    test) EXTRAS="[dev]" ; MODULES="twostream_das pytest selenium av cv2 onnxruntime onnxscript" ;;
    extract) EXTRAS="[video]" ; MODULES="twostream_das av cv2" ;;
    docs) EXTRAS="[docs]" ; MODULES="twostream_das mkdocs material mkdocstrings" ;;
esac

# --- the environment -------------------------------------------------------------------------
# $1: an interpreter. Exit 0 when it has torch that imports and fits pyproject.toml's range.
torch_fits() {
    "$1" - "$ROOT/pyproject.toml" 2>/dev/null <<'PYEOF'
import re, sys
import torch
torch.zeros(1) + 1  # imports and runs
line = re.search(r'"(torch[^"]*)"', open(sys.argv[1]).read()).group(1)  # e.g. torch>=2.1,<2.15
try:
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version
except ImportError:  # no pip to judge with: take it
    sys.exit(0)
version = Version(torch.__version__.split("+")[0])
sys.exit(0 if Requirement(line).specifier.contains(version, prereleases=True) else 1)
PYEOF
}

OWN_VENV=0
if [ -n "${VIRTUAL_ENV:-}" ]; then
    PY="$VIRTUAL_ENV/bin/python"
    WHERE="the active virtual environment $VIRTUAL_ENV"
elif [ -n "${CONDA_PREFIX:-}" ]; then
    PY="$CONDA_PREFIX/bin/python"
    WHERE="the active conda environment $CONDA_PREFIX"
else
    OWN_VENV=1
    PY="$ROOT/.venv/bin/python"
    WHERE="$ROOT/.venv"
    if [ ! -e "$PY" ]; then
        BASE=${PYTHON:-python3}
        command -v "$BASE" >/dev/null 2>&1 || die "no '$BASE' found: install Python 3.10 or newer (Debian/Ubuntu: sudo apt install python3 python3-venv), or set PYTHON"
        "$BASE" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
            || die "$BASE is Python $("$BASE" -c 'import sys; print(sys.version.split()[0])'); this package needs 3.10 or newer (set PYTHON to one)"
        VER=$("$BASE" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        VENV_HINT="Python's venv module is missing for $BASE: install it (Debian/Ubuntu: sudo apt install python$VER-venv), or activate an environment of your own, then rerun"
        "$BASE" -c 'import venv, ensurepip' 2>/dev/null || die "$VENV_HINT"
        SITE=""
        if [ -z "${TORCH_SPEC:-}${TORCH_INDEX_URL:-}" ] && torch_fits "$BASE"; then
            SITE="--system-site-packages"  # keep the torch that works (and its CUDA build)
            say "making .venv with $BASE, which sees its packages ($BASE has a working torch)"
        else
            say "making .venv with $BASE"
        fi
        if ! "$BASE" -m venv $SITE "$ROOT/.venv" >&2; then
            rm -rf "$ROOT/.venv"
            die "$VENV_HINT"
        fi
    fi
fi
[ -x "$PY" ] || die "$WHERE has no python at $PY; activate a working environment, or remove it and rerun"
"$PY" -c 'import sys' 2>/dev/null || die "$PY does not run; remove $WHERE and rerun (it is remade)"
# Never a Python that is not an environment of its own and whose owner manages it (PEP 668).
"$PY" - <<'PYEOF' || die "$PY is an externally managed system Python (PEP 668); activate a virtual environment, or deactivate so that .venv is made here"
import os, sys, sysconfig
own_env = sys.prefix != sys.base_prefix or os.path.isdir(os.path.join(sys.prefix, "conda-meta"))
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(1 if managed and not own_env else 0)
PYEOF

# --- nothing to do? ----------------------------------------------------------------------------
STAMP="$ROOT/.setup-stamp"
digest() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }  # macOS
WANT="$(digest < "$ROOT/pyproject.toml" | cut -d' ' -f1) $WHAT $PY"
ready() {
    grep -qxF "$WANT" "$STAMP" 2>/dev/null || return 1
    # shellcheck disable=SC2086  # MODULES is a word list
    "$PY" - "$ROOT/src" $MODULES 2>/dev/null <<'PYEOF'
import importlib, pathlib, sys
for name in sys.argv[2:]:
    importlib.import_module(name)
package = pathlib.Path(sys.modules["twostream_das"].__file__).resolve()
sys.exit(0 if pathlib.Path(sys.argv[1]).resolve() in package.parents else 1)  # this checkout's
PYEOF
}

if ! ready; then
    PIP=("$PY" -m pip install --disable-pip-version-check)
    # --- torch -------------------------------------------------------------------------------
    if [ -n "${TORCH_SPEC:-}${TORCH_INDEX_URL:-}" ] || ! torch_fits "$PY"; then
        SPEC=${TORCH_SPEC:-torch==2.13.0}
        if [ -n "${TORCH_INDEX_URL:-}" ]; then
            say "installing $SPEC from $TORCH_INDEX_URL into $WHERE"
            "${PIP[@]}" "$SPEC" --index-url "$TORCH_INDEX_URL" >&2
        elif command -v nvidia-smi >/dev/null 2>&1; then
            say "installing $SPEC (an NVIDIA driver is here: the default index's build) into $WHERE"
            "${PIP[@]}" "$SPEC" >&2
        else
            say "installing $SPEC, the CPU build (no nvidia-smi here), into $WHERE"
            if ! "${PIP[@]}" "$SPEC" --index-url "$CPU_INDEX" >&2; then
                say "PyTorch's CPU index ($CPU_INDEX) could not be used; trying the default index (on Linux x86_64 its torch is the CUDA build: about 5 GB installed with its nvidia-* wheels)"
                "${PIP[@]}" "$SPEC" >&2
            fi
        fi
    else
        say "keeping torch $("$PY" -c 'import torch; print(torch.__version__)') (it works)"
    fi
    # --- the package, editable, with what the command needs -----------------------------------
    say "installing this checkout${EXTRAS:+ with the extra ${EXTRAS//[\[\]]/}} into $WHERE"
    "${PIP[@]}" -e "$ROOT$EXTRAS" >&2
    {   # one line per (command, interpreter): pyproject.toml's digest when it was set up
        [ -f "$STAMP" ] && awk -v w="$WHAT" -v p="$PY" 'NF >= 3 && !($2 == w && $3 == p)' "$STAMP"
        echo "$WANT"
    } > "$STAMP.tmp"
    mv "$STAMP.tmp" "$STAMP"
    if [ "$OWN_VENV" = 1 ]; then
        say "done. twostream-das is installed in .venv: run $ROOT/.venv/bin/twostream-das --help, or first: source $ROOT/.venv/bin/activate"
    else
        say "done. twostream-das is installed in $WHERE: run twostream-das --help"
    fi
fi
if [ "$PRINT_PYTHON" = 1 ]; then
    echo "$PY"
fi
