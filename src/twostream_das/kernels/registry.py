"""Which implementation of an op runs: every backend's registrations and the one dispatch.

Each backend registers its implementation of each op (:func:`register`) with what it accepts: a
predicate over the op's own arguments (device, dtype, grad mode, layout, DiffAct's attention at
the sequence ends). :func:`implementation` is the one dispatch: the chosen backend
(:func:`.backends.current_backend`) if it accepts the arguments, else the next one of its
fallback chain (:data:`FALLBACK`: native, then shifted, then the reference, which accepts
everything). The model never names a backend; :mod:`.ops` calls :func:`implementation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from .backends import Backend, current_backend

OPS = ("dropout", "instance_norm", "windowed_attention", "conv_attention")
"""The ops of :mod:`.ops`; every backend of :data:`FALLBACK`'s chains ends in one that has all."""

FALLBACK: dict[Backend, Optional[Backend]] = {
    Backend.NATIVE: Backend.SHIFTED,
    Backend.SHIFTED: Backend.REFERENCE,
    Backend.REFERENCE: None,
}
"""Where an op goes when a backend has no implementation for its arguments."""


def accepts_all(*args: Any) -> bool:
    """The reference's predicate: plain PyTorch takes every argument autograd can."""
    return True


@dataclass(frozen=True)
class Implementation:
    """One backend's implementation of one op.

    Attributes:
        run: called with the op's arguments (:mod:`.ops` documents them and their shapes).
        accepts: the same arguments -> whether ``run`` takes them.
    """

    run: Callable[..., Any]
    accepts: Callable[..., bool] = accepts_all


_TABLE: dict[tuple[str, Backend], Implementation] = {}


def register(
    op: str, backend: Backend, run: Callable[..., Any], accepts: Callable[..., bool] = accepts_all
) -> None:
    """``backend``'s implementation of ``op`` (one of :data:`OPS`), taking what ``accepts``
    says (a later registration of the same pair replaces it)."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}: expected one of {', '.join(OPS)}")
    _TABLE[(op, backend)] = Implementation(run, accepts)


def implementation(op: str, *args: Any) -> Callable[..., Any]:
    """The function that runs ``op`` on ``args`` now: the chosen backend's, else its fallbacks'
    (see the module docstring)."""
    backend: Optional[Backend] = current_backend()
    while backend is not None:
        found = _TABLE.get((op, backend))
        if found is not None and found.accepts(*args):
            return found.run
        backend = FALLBACK[backend]
    raise LookupError(f"no backend implements {op} for these arguments (is it registered?)")


def registered(op: str) -> dict[Backend, Implementation]:
    """The backends that implement ``op``, with their implementations."""
    return {backend: impl for (name, backend), impl in _TABLE.items() if name == op}
