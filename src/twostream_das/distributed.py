"""Multi-process training with PyTorch DDP, launched by ``torchrun``.

    torchrun --nproc-per-node N -m twostream_das train --config gtea --out runs/gtea/1

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`process_group` reads them and starts the default process group (NCCL on CUDA, gloo on
CPU), so nothing else needs configuring. Without those variables (a plain ``twostream-das
train``) it does nothing and every helper here answers as for a single process.

Semantics (see :mod:`twostream_das.workflows.training`): ``train.batch_size`` is the GLOBAL
batch, split evenly over the ranks (it must be a multiple of the world size); every sample's
diffusion draws come from a generator derived from its position in the epoch, so N ranks train
exactly like one process that sees the same global batch (dropout aside, which draws from each
rank's own RNG).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(hours=2)
"""How long a rank waits at a collective (e.g. while rank 0 validates) before giving up."""


def launched() -> bool:
    """True when started by ``torchrun`` (or any launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without a process group."""
    if is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_device(device: torch.device) -> torch.device:
    """Under a launcher, a CUDA device without an index becomes ``cuda:LOCAL_RANK``."""
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def barrier() -> None:
    """Wait for every rank (a no-op for a single process)."""
    if is_initialized():
        dist.barrier()


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (itself for a single process). A small picklable
    object only (e.g. an error message); it travels between the ranks of one job, never
    through a file."""
    if not is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over the ranks (unchanged for a single process)."""
    if not is_initialized() or not values:
        return values
    keys = list(values)  # the same order on every rank (same code path)
    packed = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    packed /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, packed.tolist(), strict=True)}


@contextlib.contextmanager
def process_group(
    device: torch.device, backend: str | None = None, timeout: datetime.timedelta = TIMEOUT
) -> Iterator[None]:
    """Start the default process group from the launcher's environment for a block, and tear
    it down afterwards. A no-op without a launcher or when a group is already up (then the
    caller owns it).

    Args:
        backend: default NCCL on CUDA, gloo on CPU (feature extraction asks for gloo: it only
            needs a barrier).
        timeout: how long a collective waits for the slowest rank.
    """
    if not launched() or is_initialized():
        yield
        return
    device = local_device(device)
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=timeout)
    rank, world = rank_and_world()
    logger.info(
        "process group up: rank %d of %d, backend %s, device %s", rank, world, backend, device
    )
    try:
        yield
    finally:
        dist.destroy_process_group()
