"""Several processes under ``torchrun``: DDP training, and ``extract`` / ``predict`` /
``evaluate`` sharded over videos.

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

Sharded work (``extract``, ``predict``, ``evaluate``): every rank lists the same videos and
takes its share (:func:`balance`) (no rank tells another what to do); :func:`agreed` makes an
error on one rank an error on all of them, so no rank waits at a collective for a rank that
stopped; :func:`gather_to_main` brings the small per-video results to rank 0, which writes
the files about all the videos. :func:`rank_threads`: the CPU threads of one rank.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Optional, TypeVar

import torch
import torch.distributed as dist

from .errors import ConfigError, TwoStreamDASError
from .runtime import available_cores

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

TIMEOUT = datetime.timedelta(hours=2)
"""How long a rank waits at a collective (e.g. while rank 0 validates) before giving up."""


def launched() -> bool:
    """True when started by ``torchrun`` (or any launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def launched_rank() -> int:
    """This process's rank as the launcher set it (0 without one), also once the process group
    is torn down: e.g. to print a job's summary line once."""
    return int(os.environ.get("RANK", "0"))


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without a process group."""
    if is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_device(device: torch.device) -> torch.device:
    """Under a launcher, a CUDA device without an index becomes ``cuda:LOCAL_RANK``.

    Raises:
        ConfigError: this machine has fewer GPUs than the launcher started processes on it.
    """
    if device.type == "cuda" and device.index is None and launched():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        count = torch.cuda.device_count()
        if local >= count:
            raise ConfigError(
                f"local rank {local} would use cuda:{local}, but this machine has {count} "
                f"GPU(s); expected at most {count} processes per machine "
                f"(torchrun --nproc-per-node {max(count, 1)})"
            )
        return torch.device("cuda", local)
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


def gather_to_main(value: _T) -> Optional[list[_T]]:
    """Every rank's ``value`` (a small picklable object), in rank order, on rank 0; None on the
    other ranks; ``[value]`` for a single process. It travels between the ranks of one job,
    never through a file."""
    if not is_initialized():
        return [value]
    rank, world = rank_and_world()
    box: Optional[list[Any]] = [None] * world if rank == 0 else None
    dist.gather_object(value, box, dst=0)
    return box


def gather_in_order(items: Sequence[_T], key: Callable[[_T], Any]) -> Optional[list[_T]]:
    """Every rank's ``items`` (small picklable objects) merged on rank 0 and sorted by ``key``
    (e.g. each video's place in the one-process order); None on the other ranks."""
    gathered = gather_to_main(list(items))
    if gathered is None:
        return None
    return sorted((item for part in gathered for item in part), key=key)


@contextlib.contextmanager
def agreed() -> Iterator[None]:
    """Run a block on every rank; when it raises on any rank, it raises on every rank.

    The rank that failed re-raises its own exception; the others raise the lowest failed
    rank's error: the same :class:`~twostream_das.errors.TwoStreamDASError` (so the CLI
    exits 2 with the same message, naming the file, on every rank), any other exception as a
    ``RuntimeError`` naming the rank and the error. The block's end is a collective (every
    rank must enter it; it also acts as a barrier). For a single process: the block as is.
    """
    failure: Optional[Exception] = None
    try:
        yield
    except Exception as err:  # noqa: BLE001 - told to every rank, then raised again below
        failure = err
    if not is_initialized():
        if failure is not None:
            raise failure
        return
    told: Any = None
    if failure is not None:  # bad input travels as itself; anything else as its text
        bad = isinstance(failure, TwoStreamDASError)
        told = failure if bad else f"{type(failure).__name__}: {failure}"
    everyone: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, told)
    if failure is not None:
        raise failure
    for rank, error in enumerate(everyone):
        if isinstance(error, TwoStreamDASError):
            raise error
        if error is not None:
            raise RuntimeError(f"rank {rank} failed: {error}")


def balance(weights: Mapping[str, int], ranks: int) -> list[list[str]]:
    """Greedy longest-processing-time split of named jobs over ``ranks``: longest first (ties
    by name), each onto the rank with the least weight so far (ties: the lower rank). Every
    rank computes the same plan from the same weights.

    Returns:
        Per rank, its names in the order they were given to it (longest first).
    """
    if ranks < 1:
        raise ValueError(f"ranks must be >= 1, got {ranks}")
    shares: list[list[str]] = [[] for _ in range(ranks)]
    loads = [0] * ranks
    for name in sorted(weights, key=lambda n: (-weights[n], n)):
        rank = min(range(ranks), key=lambda r: (loads[r], r))
        shares[rank].append(name)
        loads[rank] += weights[name]
    return shares


def my_share(weights: Mapping[str, int]) -> set[str]:
    """The names this rank works on (all of them for a single process): its :func:`balance`
    share of ``weights`` (name -> work, e.g. frames or bytes)."""
    rank, world = rank_and_world()
    return set(weights) if world == 1 else set(balance(weights, world)[rank])


def rank_threads(threads: Optional[int] = None) -> Optional[int]:
    """Set this process's torch CPU threads for sharded work, and return them (None: left
    as they are).

    ``threads`` (``--threads``) wins. Otherwise, under a launcher with several processes on
    this machine (``LOCAL_WORLD_SIZE`` > 1), each takes the cores it may use divided by those
    processes, unless ``OMP_NUM_THREADS`` asks for more than one: ``torchrun`` sets
    ``OMP_NUM_THREADS=1`` for every worker when it is unset (with a warning), and a worker
    cannot tell that from a user's 1, so 1 counts as unset (``--threads 1`` means one).

    Raises:
        ConfigError: ``threads`` < 1.
    """
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise ConfigError(f"--threads {threads!r} is invalid; expected an integer >= 1")
    if threads is None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        asked = os.environ.get("OMP_NUM_THREADS", "").strip()
        if local <= 1 or (asked not in ("", "1")):
            return None
        threads = max(1, available_cores() // local)
    torch.set_num_threads(threads)
    logger.info("%d torch thread(s) in this process", threads)
    return threads


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
