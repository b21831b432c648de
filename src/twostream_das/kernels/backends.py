"""The one switch for the fast paths: which implementation of the block's ops runs.

The model calls the ops of :mod:`.ops` (dropout, dilated conv + windowed attention, windowed
attention, instance norm); each op has one dispatch point that reads :func:`current_backend`:

- ``reference``: plain PyTorch (``F.conv1d``, window tensors, the instance-norm formula,
  ``F.dropout``), differentiated by autograd; the two streams run one after the other. It is
  the spec: every fast backend is tested against it (``tests/kernels/test_ops.py``).
- ``shifted``: the same math as k shifted multiply-adds with hand-written backwards (no window
  tensor), one packed projection per block in training, hashed dropout masks, and the streams
  of a two-stream model stacked into one pass at inference (prediction's choice,
  :mod:`twostream_das.prediction.stacked`); PyTorch ops only.
- ``native``: ``shifted`` with the window multiply-adds and the dropout pass in the small C++
  kernels of :mod:`.native` (CPU, float32/64), compiled on first use.

The default is the fastest available backend: ``native`` where its kernels build, else
``shifted``. Choose another one for a block of code with :func:`use_backend`, or for a process
with the environment variable ``TWOSTREAM_DAS_BACKEND=reference|shifted|native`` (read once,
at the first use in a process). The choice of :func:`use_backend` is a context variable: other
threads and asyncio tasks keep their own. The older variable ``TWOSTREAM_DAS_NATIVE`` is not
read any more; a process that sets it is stopped with the new spelling.

Which implementation of an op runs is :mod:`.registry`'s one dispatch: each backend registers
its implementation of each op with what it accepts; where the chosen backend's does not accept
the arguments, the next backend of its fallback chain runs (native, shifted, reference).

A fast backend uses the reference for what it does not implement: gradients through mixed
dtypes or under autocast. DiffAct's attention at the sequence ends
(``model.attention_outside=diffact``, the converted DiffAct checkpoints) runs in every backend,
forward and backward. Where ``native`` is asked for but its kernels cannot be built,
``shifted`` runs (one warning). The dropout masks of ``reference`` are other draws than those
of the fast backends (``shifted`` and ``native`` draw the same masks to the bit).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Optional, Union

from ..errors import ConfigError
from . import native

ENV_VAR = "TWOSTREAM_DAS_BACKEND"
OLD_ENV_VAR = "TWOSTREAM_DAS_NATIVE"  # no longer read (0 meant shifted)


class Backend(str, enum.Enum):
    """Implementations of the block's ops (see the module docstring)."""

    REFERENCE = "reference"
    SHIFTED = "shifted"
    NATIVE = "native"


_chosen: ContextVar[Optional[Backend]] = ContextVar("twostream_das_backend", default=None)
"""What :func:`use_backend` set in this context (thread, task); None: the process default."""


def parse_backend(value: Union[Backend, str]) -> Backend:
    """``Backend`` or its name; a ValueError naming the choices otherwise."""
    if isinstance(value, Backend):
        return value
    try:
        return Backend(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(b.value for b in Backend)
        raise ValueError(f"unknown backend {value!r}: expected one of {choices}") from None


def backend_from_environment(environ: Mapping[str, str]) -> Optional[Backend]:
    """The backend ``TWOSTREAM_DAS_BACKEND`` asks for; None when it is not set (the default
    applies).

    Raises:
        ConfigError: an unknown backend name, or the older ``TWOSTREAM_DAS_NATIVE`` set.
    """
    if OLD_ENV_VAR in environ:
        raise ConfigError(
            f"{OLD_ENV_VAR} is no longer read; set {ENV_VAR}=shifted for what "
            f"{OLD_ENV_VAR}=0 did (or {ENV_VAR}=native), and unset {OLD_ENV_VAR}"
        )
    value = environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    try:
        return parse_backend(value)
    except ValueError as error:
        raise ConfigError(f"{ENV_VAR}: {error}") from None


_environment: list[Optional[Backend]] = []  # os.environ's choice, read at the first use


def requested_backend() -> Optional[Backend]:
    """What :func:`use_backend` or the environment (read once per process) asks for; None:
    the default."""
    chosen = _chosen.get()
    if chosen is not None:
        return chosen
    if not _environment:
        _environment.append(backend_from_environment(os.environ))
    return _environment[0]


def current_backend() -> Backend:
    """The backend the ops use now: :func:`use_backend`, else ``TWOSTREAM_DAS_BACKEND``, else
    ``native`` where its kernels are built (the first call tries the build), else ``shifted``."""
    chosen = requested_backend()
    if chosen in (None, Backend.NATIVE):
        return Backend.NATIVE if native.available() else Backend.SHIFTED
    return chosen


@contextmanager
def use_backend(backend: Union[Backend, str]) -> Iterator[Backend]:
    """Run the enclosed code with ``backend`` (a :class:`Backend` or its name), in this context
    only (a thread or task started inside does not inherit it).

    Example::

        with use_backend("reference"):
            probs = model.predict_proba(features, mask, generators, sampler)
    """
    chosen = parse_backend(backend)
    token = _chosen.set(chosen)
    try:
        yield chosen
    finally:
        _chosen.reset(token)
