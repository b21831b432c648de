"""Device choice, mixed precision and seed derivation shared by training and inference.

Randomness: every generator is derived from a base seed and names (``derive_seed(seed, "epoch",
3)``), never from hidden global state, so any step of any run can be replayed exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator

import torch

from .config import Precision
from .errors import ConfigError

logger = logging.getLogger(__name__)

_SEED_BITS = 62  # derived seeds stay well inside int64 (torch.Generator.manual_seed's range)


def derive_seed(seed: int, *parts: object) -> int:
    """A seed for one purpose, from a base seed and names/numbers (e.g. a purpose, an epoch).

    The BLAKE2b hash of ``"seed|part1|part2|..."``, cut to 62 bits. Every bit depends on every
    input: the CPU generator (mt19937) keeps only the low 32 bits of a seed, so a layout that
    put the base seed in the high bits gave every seed the same draws on CPU. The
    same inputs give the same seed on every machine and Python version (unlike ``hash``).
    """
    text = "|".join(str(p) for p in (int(seed), *parts))
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (1 << _SEED_BITS)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_device(name: str, option: str = "train.device") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device, checked.

    Args:
        name: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ...
        option: how the user gave it, for the error (``train.device``, ``--device``,
            ``load_model(device=...)``).

    Raises:
        ConfigError: not a device, or a CUDA device was asked for but is not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    given = f"{option} {name!r}" if option.startswith("-") else f"{option} = {name!r}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{given} is not a device; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"{given} but CUDA is not available on this machine; expected cpu or auto"
        )
    return device


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """Training's autocast dtype (``train.amp``), or None for full precision.

    bf16 on CUDA devices that support it when ``enabled`` (no loss scaling needed); CPU training
    runs in fp32 (CPU bf16 autocast was no faster at GTEA sizes in docs/PERFORMANCE.md's runs).
    """
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def inference_dtype(device: torch.device, precision: Precision | str) -> torch.dtype | None:
    """Inference's autocast dtype (``eval.precision``; validation, ``evaluate``, ``predict``),
    or None for fp32. Independent of ``train.amp``.

    ``bf16`` autocasts on CPU and on CUDA devices with bf16; a CUDA device without it falls back
    to fp32 with a warning. On CPU bf16 was about 1.7x faster at Breakfast sizes and no faster at
    GTEA sizes in the runs of docs/PERFORMANCE.md; it changes the probabilities at
    bf16 precision.
    """
    if Precision(precision) is Precision.FP32:
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        logger.warning("eval.precision = bf16 but %s has no bf16; inference runs in fp32", device)
        return None
    return torch.bfloat16


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Autocast to ``dtype`` for forward passes on ``device``; a no-op when ``dtype`` is None
    (see :func:`amp_dtype` and :func:`inference_dtype`)."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
