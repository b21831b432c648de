"""Native CPU kernels of the windowed attention (``csrc/window_ops.cpp``), built on first use.

The kernels are the windowed attention's forward and backward (:func:`.fast.attend`,
:func:`.fast.attend_backward`: one call per block instead of 3k + 3 PyTorch ops, with the
k partial sums kept in registers), the conv as the shifted sum of its taps' projections
(:func:`.fast.conv_attention`) and the training dropout's masking pass
(:func:`.fast.dropout`), forward and backward. They are compiled once per machine
with :func:`torch.utils.cpp_extension.load` (a C++ compiler with OpenMP and ninja, a dependency
of this package, are needed; the build takes 20-40 s on 2 cores and is cached under
``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``; processes building at once
wait for one another, and a lock left by a killed build is removed after STALE_LOCK_S,
:func:`clear_stale_lock`), for the instruction set that PyTorch itself uses on this CPU, so
machines sharing a home folder each get their own build.

They serve the ``native`` backend (:mod:`.backends`), the default where they build. Where the
build fails (no compiler), the package warns once and runs the ``shifted`` backend, which gives
the same results to float rounding. ``TWOSTREAM_DAS_BACKEND=shifted`` skips the build. This
module only builds and loads the kernels and says which tensors they take (:func:`applies`);
the ``native`` backend that calls them is :mod:`.fast` with ``kernels=True``.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

SOURCE = Path(__file__).with_name("csrc") / "window_ops.cpp"
MAX_TAPS = 15  # the window sizes the kernels are instantiated for: odd, 1..15
ISA_FLAGS = {  # torch.backends.cpu.get_cpu_capability() -> compiler flags
    "AVX512": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}
DTYPES = (torch.float32, torch.float64)
STALE_LOCK_S = 600.0  # a build lock this old was left by a killed build (builds take < 1 min)
logger = logging.getLogger(__name__)

_state: dict[str, Optional[bool]] = {"loaded": None}
_build_lock = threading.Lock()


def _isa() -> str:
    return torch.backends.cpu.get_cpu_capability()


def _build() -> bool:
    """Compile (or load the cached build of) the kernels; False with one warning on failure."""
    from torch.utils import cpp_extension

    isa = _isa()
    name = f"twostream_das_window_ops_{isa.lower()}"
    fresh = not _cached(name)
    clear_stale_lock(name)
    if fresh:  # first use on this machine: say why the next half-minute is silent
        logger.info("building native CPU kernels (once, ~30 s; cached afterwards)...")
    start = time.perf_counter()
    try:
        cpp_extension.load(
            name=name,
            sources=[str(SOURCE)],
            # -fopenmp: at::parallel_for is inline OpenMP code, serial without it; the
            # extension then shares the libgomp that torch has already loaded
            extra_cflags=["-O3", "-fopenmp", *ISA_FLAGS.get(isa, [])],
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
            verbose=False,
        )
    except Exception as error:  # no compiler, no ninja, a failed build: fall back, say why
        warnings.warn(
            f"twostream_das: the native window kernels ({SOURCE.name}) could not be built, "
            f"so the shifted backend's PyTorch ops are used (same results, slower): {error}. Set "
            "TWOSTREAM_DAS_BACKEND=shifted to skip the build.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    if fresh:
        logger.info("native CPU kernels built in %.0f s", time.perf_counter() - start)
    return True


def _build_directory(name: str) -> Optional[Path]:
    """torch's extension cache folder of extension ``name`` (None if torch's private helper
    moved)."""
    from torch.utils import cpp_extension

    try:
        return Path(cpp_extension._get_build_directory(name, verbose=False))
    except Exception:  # a private helper of torch: if it moves, do without
        return None


def _cached(name: str) -> bool:
    """True when a build of extension ``name`` is in torch's extension cache already."""
    folder = _build_directory(name)
    return folder is not None and (folder / f"{name}.so").is_file()


def clear_stale_lock(name: str, stale_after_s: float = STALE_LOCK_S) -> bool:
    """Remove the build lock of extension ``name`` that a killed build left behind.

    torch waits for as long as ``<build dir>/lock`` exists, and a build killed mid-way never
    removes it, so every later process would hang silently. A lock older than
    ``stale_after_s`` (a build takes well under a minute) is removed with a warning naming it; a
    younger one is another process's build in progress, and the wait is logged. Returns True
    when a stale lock was removed.
    """
    folder = _build_directory(name)
    lock = folder / "lock" if folder is not None else None
    if lock is None or not lock.exists():
        return False
    age = time.time() - lock.stat().st_mtime
    if age <= stale_after_s:
        logger.info("waiting for another process's build of the native kernels (%s)", lock)
        return False
    warnings.warn(
        f"twostream_das: removing {lock}, left {age:.0f} s ago by a native-kernel build that "
        f"did not finish (older than {stale_after_s:.0f} s); building again",
        RuntimeWarning,
        stacklevel=2,
    )
    lock.unlink(missing_ok=True)
    return True


def available() -> bool:
    """Whether the kernels are built (the first call builds them, or loads the cached build)."""
    if _state["loaded"] is None:
        with _build_lock:  # one build per process, even if threads ask at once
            if _state["loaded"] is None:
                _state["loaded"] = _build()
    return bool(_state["loaded"])


def _ops():
    """The kernels' op namespace; an error naming the cause when they are not built."""
    if not _state["loaded"]:
        raise RuntimeError(
            "the native window kernels are not built (they build on the first "
            "native.available()) or failed to build; use the ops of "
            "twostream_das.kernels.ops, which fall back to PyTorch ops"
        )
    return torch.ops.twostream_das


def applies(taps: int, *tensors: torch.Tensor) -> bool:
    """Whether a kernel may take these tensors: CPU, float32/64 (one dtype), frames
    contiguous, an odd window of at most :data:`MAX_TAPS`, and no autograd (the kernels write
    in place and have no derivative; they serve the no-grad forward, the hand-written backward
    and inference). Whether the ``native`` backend is selected is the dispatch's question
    (:mod:`.registry`; it reaches :mod:`.fast` as ``kernels=True``)."""
    first = tensors[0]
    return (
        taps % 2 == 1
        and taps <= MAX_TAPS
        and first.device.type == "cpu"
        and first.dtype in DTYPES
        and all(t.dtype == first.dtype and t.device == first.device for t in tensors)
        and all(t.dim() == 3 and (t.stride(2) == 1 or t.shape[2] <= 1) for t in tensors)
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
    )


def window_attention_(
    out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    dilation: int,
    scale: float,
    diffact_eps: Optional[float] = None,
) -> torch.Tensor:
    """``weights = softmax_j(key_mask ? scale q . k_j : lowest)`` (B, k, T), returned, and
    ``out += sum_j weights_j v_j`` in place (see :func:`.fast.attend`). With ``diffact_eps``
    DiffAct's handling of the masked positions: every score gets ``log(key_mask +
    diffact_eps)``, the softmax runs over all k positions and the masked ones' weights are then
    0 (:func:`.reference.windowed_attention` with ``diffact_outside``)."""
    return _ops().window_attention_(out, q, k, v, key_mask, dilation, scale, diffact_eps)


def window_attention_backward_(
    grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    grad_out: torch.Tensor,
    saved: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    dilation: int,
    scale: float,
) -> None:
    """Adds the gradients of q, k and v of :func:`window_attention_` to ``grads``, given
    ``saved = (q, k, v, weights, key_mask)`` (see :func:`.fast.attend_backward`)."""
    _ops().window_attention_backward_(*grads, grad_out, *saved, dilation, scale)


def window_taps_(out: torch.Tensor, z: torch.Tensor, taps: int, dilation: int) -> None:
    """``out[:, c, t] += sum_j z[:, j C + c, t + o_j]``: the dilated conv from its taps'
    projections, out (B, C, T), z (B, k C, T)."""
    _ops().window_taps_(out, z, taps, dilation)


def dropout_apply(x: torch.Tensor, seed: int, threshold: int, scale: float) -> torch.Tensor:
    """``x * scale`` where an element's 16-bit share (:func:`.fast.dropout_shares`) is below
    ``threshold``, else 0 (x contiguous)."""
    return _ops().dropout_apply(x, seed, threshold, scale)
