"""Shared helpers of the model benchmarks (timing, FLOPs, memory, machine description)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from twostream_das.config import Config, load_config
from twostream_das.diffusion import Sampler, make_sampler
from twostream_das.kernels import current_backend, native
from twostream_das.model.two_stream import TwoStreamModel

ROOT = Path(__file__).resolve().parents[1]

PRESETS = {  # preset -> (stream dims, classes), the sizes of the paper's features
    "gtea": ({"rgb": 768, "flow": 1024}, 11),
    "breakfast": ({"rgb": 1024, "flow": 1024}, 48),
}


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch CPU threads (:func:`use_threads`)."""
    parser.add_argument("--threads", type=int, default=None, help="default 2; 1 with --quick")


def use_threads(args: argparse.Namespace) -> int:
    """Set torch's CPU threads from ``--threads`` (default 2; 1 with ``--quick``), returned."""
    threads = args.threads or (1 if args.quick else 2)
    torch.set_num_threads(threads)
    return threads


def machine(threads: int) -> dict[str, object]:
    """What the numbers were measured on, and how busy it was."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "native_window_kernels": native.available(),
        "default_backend": current_backend().value,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def build_model(preset: str, overrides: list[str] | None = None) -> tuple[TwoStreamModel, Config]:
    cfg = load_config(preset, overrides or [])
    dims, classes = PRESETS[preset]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TwoStreamModel.from_config(cfg, dims, classes)
    return model, cfg


def eval_model_and_video(
    preset: str, frames: int, overrides: list[str] | None = None
) -> tuple[TwoStreamModel, Sampler, dict[str, torch.Tensor], torch.Tensor]:
    """:func:`build_model` in eval mode, its config's sampler, and one random video of
    ``frames`` frames for it: stream -> (1, D_s, T) features (seed 0) and its (1, T) all-true
    mask."""
    model, cfg = build_model(preset, overrides)
    model.eval()
    dims, _ = PRESETS[preset]
    gen = torch.Generator().manual_seed(0)
    features = {s: torch.randn(1, d, frames, generator=gen) for s, d in dims.items()}
    return model, make_sampler(cfg), features, torch.ones(1, frames, dtype=torch.bool)


def time_it(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median and min wall time of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    return time_interleaved({"fn": fn}, repeats, warmup)["fn"]


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """:func:`time_it` for several variants, interleaved: round r runs every variant once (in
    an order rotated each round), so a burst of load from other jobs on a shared machine hits
    all variants alike instead of one, and the ratios between them stay meaningful."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(t), "min_s": min(t), "repeats": repeats}
        for name, t in times.items()
    }


def compare_predictions(
    a: Mapping[str, Mapping[str, np.ndarray]], b: Mapping[str, Mapping[str, np.ndarray]]
) -> tuple[bool, float]:
    """Two runs' probabilities (video -> stream -> (C, T)): whether they hold the same videos
    with the same argmax everywhere, and the largest absolute difference."""
    same, largest = set(a) == set(b), 0.0
    for name, probs in a.items():
        for stream, p in probs.items():
            q = b[name][stream]
            same &= bool(np.array_equal(p.argmax(0), q.argmax(0)))
            largest = max(largest, float(np.abs(p - q).max()))
    return same, largest


def videos_per_second(
    timings: Mapping[str, Mapping[str, float]], videos: int
) -> dict[str, dict[str, float]]:
    """Each variant's timing with its videos per second (over its median)."""
    return {
        name: {**timing, "videos_per_s": round(videos / timing["median_s"], 3)}
        for name, timing in timings.items()
    }


def count_gflop(fn: Callable[[], object]) -> float:
    """Matmul/conv FLOPs of one call (FlopCounterMode counts those ops only), in GFLOP."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def matmul_gflops(size: int, repeats: int) -> float:
    """Achieved GFLOP/s of a large fp32 matmul: the machine's practical ceiling."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    timing = time_it(lambda: a @ b, repeats)
    return 2 * size**3 / timing["min_s"] / 1e9


def peak_rss_mib() -> float:
    """Peak resident memory of this process's own address space so far, in MiB.

    On Linux ``VmHWM`` from ``/proc/self/status``, not ``ru_maxrss``: Linux carries ru_maxrss
    over ``exec``, so a child started by a large parent would report the parent's peak.
    Elsewhere ``ru_maxrss`` (bytes on macOS, KiB on the BSDs).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def import_old(ref: str, into: Path, repo: Path = ROOT) -> ModuleType:
    """``twostream_das`` at commit ``ref`` of git repository ``repo`` as the package
    ``twostream_das_old``."""
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", ref, "src/twostream_das"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    package = into / "src" / "twostream_das"
    spec = importlib.util.spec_from_file_location(
        "twostream_das_old", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["twostream_das_old"] = module
    spec.loader.exec_module(module)
    return module


def old_module(name: str) -> ModuleType:
    """Module ``name`` of the package :func:`import_old` imported (``model.two_stream``), also
    from a commit before the folders (where it sat at the root: ``two_stream``)."""
    try:
        return importlib.import_module(f"twostream_das_old.{name}")
    except ModuleNotFoundError:
        return importlib.import_module(f"twostream_das_old.{name.rpartition('.')[2]}")
