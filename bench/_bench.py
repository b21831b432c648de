"""Shared helpers of the model benchmarks (timing, FLOPs, memory, machine description)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from twostream_das.config import Config, load_config
from twostream_das.diffusion import Sampler, make_sampler
from twostream_das.kernels import current_backend, native
from twostream_das.model.multi_stream import MultiStreamModel

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


def build_model(preset: str, overrides: list[str] | None = None) -> tuple[MultiStreamModel, Config]:
    cfg = load_config(preset, overrides or [])
    dims, classes = PRESETS[preset]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MultiStreamModel.from_config(cfg, dims, classes)
    return model, cfg


def eval_model_and_video(
    preset: str, frames: int, overrides: list[str] | None = None
) -> tuple[MultiStreamModel, Sampler, dict[str, torch.Tensor], torch.Tensor]:
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


AGAINST_ROUNDS = 5
"""``--rounds``' default: runs of each tree, alternating (this, REV), then (REV, this), ..."""


def add_against_args(parser: argparse.ArgumentParser) -> None:
    """``--against REV``, ``--rounds N`` and ``--repo``: time this tree against git revision REV
    (:func:`run_against`)."""
    parser.add_argument(
        "--against", metavar="REV",
        help="time this tree against git revision REV, each in subprocesses run alternately "
        "with the same other options (one JSON object with the ratios)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=AGAINST_ROUNDS,
                        help=f"runs of each tree with --against (default {AGAINST_ROUNDS})")
    parser.add_argument("--repo", type=Path, default=ROOT, help="git repository of --against")


def without_against(argv: Sequence[str]) -> list[str]:
    """``argv`` less ``--against REV``, ``--rounds N`` and ``--repo PATH`` (either spelling)."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        name = item.split("=", 1)[0]
        if name in ("--against", "--rounds", "--repo"):
            skip = "=" not in item
            continue
        out.append(item)
    return out


def run_tree(tree: Path, script: str, argv: Sequence[str], env: Mapping[str, str]) -> dict:
    """``tree/bench/<script> argv`` in a fresh process with ``tree``'s package first on the
    path (``PYTHONPATH=tree/src:tree/bench``); its stdout's JSON report."""
    environ = {**os.environ, **env, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree / 'bench'}"}
    done = subprocess.run([sys.executable, str(tree / "bench" / script), *argv], cwd=tree,
                          env=environ, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{script} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def row_key(row: Mapping[str, object]) -> str:
    """A result row's name: ``preset:T:variant``."""
    return f"{row['preset']}:{row['frames']}:{row['variant']}"


def run_against(script: str, argv: Sequence[str], rev: str, rounds: int, repo: Path = ROOT
                ) -> dict[str, object]:  # fmt: skip
    """This tree's ``bench/<script>`` against revision ``rev``'s own, interleaved.

    ``rev`` is checked out with ``git worktree add`` into a temporary folder (removed after).
    Each round runs both trees' script once in a subprocess with the same ``argv``, in an
    order that alternates from round to round, so load from other jobs hits both alike. A
    tree's time for a row is the median of its rounds' medians; ``ratio`` is this tree's over
    ``rev``'s (below 1: this tree is faster), with the ratio of each round beside it. The other
    tree builds its native kernels into a cache folder of its own.
    """
    cache = os.environ.get("TORCH_EXTENSIONS_DIR", str(Path(tempfile.gettempdir()) / "tx"))
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "--quiet",
                        str(other), rev], check=True)  # fmt: skip
        try:
            commit = subprocess.run(["git", "-C", str(other), "rev-parse", "HEAD"], check=True,
                                    capture_output=True, text=True).stdout.strip()
            trees = {"this": (ROOT, {}),
                     "against": (other, {"TORCH_EXTENSIONS_DIR": f"{cache}-{commit[:12]}"})}
            reports: dict[str, list[dict]] = {name: [] for name in trees}
            for r in range(rounds):
                for name in list(trees)[:: 1 if r % 2 == 0 else -1]:
                    tree, env = trees[name]
                    reports[name].append(run_tree(tree, script, argv, env))
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(other)],
                           check=False)  # fmt: skip
    return {"benchmark": reports["this"][0].get("benchmark"), "against": rev,
            "against_commit": commit, "argv": list(argv), "rounds": rounds,
            "machine": reports["this"][0].get("machine"),
            "results": compare_rounds(reports["this"], reports["against"])}  # fmt: skip


def compare_rounds(this: Sequence[dict], against: Sequence[dict]) -> list[dict[str, object]]:
    """Per result row: both trees' median over rounds of their median seconds, the ratio
    this / against, and each round's ratio."""
    rows = []
    for row in this[0]["results"]:
        key = row_key(row)
        mine = [next(r["median_s"] for r in rep["results"] if row_key(r) == key) for rep in this]
        theirs = [next(r["median_s"] for r in rep["results"] if row_key(r) == key)
                  for rep in against]  # fmt: skip
        rows.append({
            "preset": row["preset"], "frames": row["frames"], "variant": row["variant"],
            "this_median_s": round(statistics.median(mine), 5),
            "against_median_s": round(statistics.median(theirs), 5),
            "ratio": round(statistics.median(mine) / statistics.median(theirs), 4),
            "round_ratios": [round(a / b, 4) for a, b in zip(mine, theirs, strict=True)],
        })  # fmt: skip
    return rows
