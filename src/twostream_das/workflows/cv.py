"""Cross-validation: every fold and seed as its own resumable run, then one summary table.

``OUT/fold<k>_seed<s>/`` is a normal run folder (train + evaluate). The summary lists every run,
each fold's mean over seeds, and the mean ± sample standard deviation over all runs, for each
stream alone (RGB only, FLOW only) and the fusion, as ``OUT/summary.{md,csv,json}``.

Spreading the runs (all three read the same run folders, so they mix freely):

- ``jobs=N`` runs N (fold, seed) runs at once on this machine, each in its own process
  (``twostream-das cv --folds k --seeds s --shard 0/1``) with ``threads`` torch/OpenMP threads
  (default: this process's CPU cores divided by N, at least 1) and, on a machine with GPUs, one
  GPU per job slot (round robin). Each child's output goes to ``OUT/logs/fold<k>_seed<s>.log``.
- ``shard=(i, n)`` runs share ``i`` of ``n`` (0-based): the runs at positions i, i + n, i + 2n, ...
  of the fold-major list (folds in order, then seeds in the given order), so a cluster's job
  array runs one deterministic share per job. A shard writes no summary (it sees only its
  runs); :func:`summarize_cv` builds it from the run folders once every shard is done.

A run that is finished (training done and ``results.json`` of the ``best`` checkpoint) is never
run again: its stored results are read back. A folder that ``twostream-das convert`` wrote for
the run's fold (``convert --fold k --out OUT/fold<k>_seed<s>``) takes a run's place: it is
evaluated, never trained, so released checkpoints get the same table.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import logging
import os
import queue
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import Config, load_config
from ..data.layout import available_folds
from ..errors import CheckpointError, ConfigError, TwoStreamDASError
from ..metrics import METRIC_KEYS
from ..runs import (
    RunDir,
    RunState,
    converted_fold,
    inspect_run,
    is_main_process,
    read_json,
    run_name,
    write_json,
    write_text,
)
from ..runtime import available_cores
from .evaluation import evaluate_run
from .training import train

logger = logging.getLogger(__name__)

LOG_FOLDER = "logs"  # OUT/logs/<run>.log: the output of each run a ``jobs > 1`` cv started
THREAD_VARIABLES: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Thread-count variables set for every child of a ``jobs > 1`` cv (read by torch at start)."""
FUSED = "fused"
"""The key of the fused prediction's metrics, after one key per stream."""


def table_streams(streams: Sequence[str]) -> list[tuple[str, str]]:
    """(key, table label) per stream in order (``rgb`` -> ``RGB``), then the fusion."""
    return [(s, s.upper()) for s in streams] + [(FUSED, FUSED)]


def result_streams(results: dict[str, Any]) -> list[str]:
    """The stream names of an ``evaluate_run`` result (its fusion weights' keys, in order)."""
    return list(results["fusion_weights"])


class CvRunFailed(TwoStreamDASError):
    """One or more runs started by ``cv --jobs`` exited with an error (their logs say why)."""


@dataclass(frozen=True)
class RunResult:
    fold: int
    seed: int
    results: dict[str, Any]  # evaluate_run's object


@dataclass(frozen=True)
class CvRun:
    """One planned (fold, seed) run: its config (with ``train.seed``) and its folder."""

    fold: int
    seed: int
    cfg: Config
    folder: Path

    @property
    def name(self) -> str:
        return run_name(self.fold, self.seed)


def parse_folds(text: str, root: str | Path) -> list[int]:
    """``all`` or a comma list such as ``1,2`` (each must exist)."""
    existing = available_folds(root)
    if text.strip() == "all":
        return existing
    try:
        folds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--folds {text!r} is invalid; expected all or a list like 1,2") from None
    missing = [k for k in folds if k not in existing]
    if missing or not folds:
        raise ConfigError(
            f"--folds {text!r}: fold(s) {missing or text} not found; {Path(root) / 'splits'} has "
            f"folds {existing}"
        )
    return folds


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N`` (SLURM: ``$SLURM_ARRAY_TASK_ID/N``)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise ConfigError(
            f"--shard {text!r} is invalid; expected I/N with 0 <= I < N, e.g. 0/4 for the first "
            "of 4 shares"
        )
    return int(match.group(1)), int(match.group(2))


def shard_runs(runs: Sequence[CvRun], index: int, count: int) -> list[CvRun]:
    """Share ``index`` of ``count``: the runs at positions index, index + count, ... ."""
    if not 0 <= index < count:
        raise ConfigError(f"shard {index}/{count} is invalid; expected 0 <= I < N")
    return list(runs[index::count])


def plan_runs(
    source: str | Path, overrides: Sequence[str], out: str | Path, folds: str = "all",
    seeds: Sequence[int] = (0,),
) -> list[CvRun]:
    """Every (fold, seed) run, fold-major, seeds in the given order (repeats dropped).

    Each run's config is ``load_config(source, overrides + ["train.seed=<s>"])`` and its folder
    ``OUT/fold<k>_seed<s>``; the same arguments give the same list on every machine.
    """
    out = Path(out)
    base = load_config(source, list(overrides))
    unique_seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not unique_seeds:
        raise ConfigError("--seeds is empty; expected at least one training seed")
    configs = {s: load_config(source, [*overrides, f"train.seed={s}"]) for s in unique_seeds}
    return [
        CvRun(fold, seed, configs[seed], out / run_name(fold, seed))
        for fold in parse_folds(folds, base.dataset.root)
        for seed in unique_seeds
    ]


def run_cv(
    source: str | Path,
    overrides: Sequence[str],
    out: str | Path,
    folds: str = "all",
    seeds: Sequence[int] = (0,),
    quiet: bool = False,
    *,
    jobs: int = 1,
    shard: Optional[tuple[int, int]] = None,
    threads: Optional[int] = None,
) -> dict[str, Any]:
    """Train and evaluate every (fold, seed) (or one shard of them), then write the summary.

    Rerunning resumes unfinished runs and reuses finished ones. With ``shard`` no summary file
    is written (the returned summary covers the shard's runs only).

    Args:
        jobs: runs at once, each in its own process (1: one after the other, in this process).
        shard: ``(i, n)``: only share ``i`` of ``n`` (see the module docstring).
        threads: torch threads per run (default with ``jobs > 1``: cores // jobs; with
            ``jobs == 1``: unchanged).

    Raises:
        CvRunFailed: a run started as a child process failed (the others still ran).
    """
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs} is invalid; expected an integer >= 1")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads {threads} is invalid; expected an integer >= 1")
    runs = plan_runs(source, overrides, out, folds, seeds)
    if shard is not None:
        runs = shard_runs(runs, *shard)
        logger.info("cv shard %d/%d: %s", *shard, ", ".join(r.name for r in runs) or "no runs")
    if jobs > 1:
        results = _run_in_children(runs, source, overrides, Path(out), jobs, threads)
    else:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        results = [RunResult(r.fold, r.seed, cv_run(r.cfg, r.fold, r.folder, quiet)) for r in runs]
    summary = summarize(results)
    if shard is None and is_main_process():
        write_tables(summary, Path(out))
    return summary


def summarize_cv(
    source: str | Path, overrides: Sequence[str], out: str | Path, folds: str = "all",
    seeds: Sequence[int] = (0,),
) -> dict[str, Any]:
    """The summary of every planned run from its folder (nothing is trained), written to
    ``OUT/summary.{md,csv,json}``: what ``run_cv`` writes when it ran them all.

    Raises:
        CheckpointError: a run is not finished (names each one), or a folder holds a run of
            another config or fold.
    """
    runs = plan_runs(source, overrides, out, folds, seeds)
    stored = {r.name: finished_result(r) for r in runs}
    missing = [name for name, result in stored.items() if result is None]
    if missing:
        raise CheckpointError(
            f"cv --summarize: {len(missing)} of {len(runs)} runs in {out} are not finished and "
            f"evaluated ({', '.join(missing)}); run their shards (or cv without --summarize) "
            "first"
        )
    summary = summarize([RunResult(r.fold, r.seed, stored[r.name] or {}) for r in runs])
    if is_main_process():
        write_tables(summary, Path(out))
    return summary


def finished_result(run: CvRun) -> Optional[dict[str, Any]]:
    """The stored ``results.json`` of a finished run evaluated on its ``best`` checkpoint, or
    None when the run still has something to do (train, resume or evaluate). A folder written by
    ``twostream-das convert`` for the run's fold stands for a finished run: it is evaluated,
    never trained (DiffAct's or 2s-DAS's released checkpoints in the cv table).

    Raises:
        CheckpointError: the folder holds something else or a run of another config or fold.
    """
    folder = RunDir(run.folder)
    fold = converted_fold(folder)
    if fold is not None:  # convert's folder stands for the run: nothing to train
        if fold != run.fold:
            raise CheckpointError(
                f"{folder.root} holds a checkpoint converted for fold {fold}; cv expects fold "
                f"{run.fold} there (convert --fold {run.fold})"
            )
    elif inspect_run(folder, run.cfg, run.fold).state is not RunState.FINISHED:
        return None
    if not folder.results_json.is_file():
        return None
    stored = read_json(folder.results_json)
    # not a manual ``evaluate --checkpoint last``
    return stored if stored.get("checkpoint") == "best" else None


def cv_run(cfg: Config, fold: int, folder: Path, quiet: bool) -> dict[str, Any]:
    """One fold and seed: train (or resume), then evaluate (or reuse a matching results.json)."""
    stored = finished_result(CvRun(fold, cfg.train.seed, cfg, folder))
    if stored is not None:
        logger.info("cv: fold %d, seed %d is finished in %s; reusing its results",
                    fold, cfg.train.seed, folder)
        return stored
    logger.info("cv: fold %d, seed %d -> %s", fold, cfg.train.seed, folder)
    if converted_fold(RunDir(folder)) is None:  # a converted checkpoint is evaluated only
        train(cfg, fold, folder, quiet)
    return evaluate_run(folder, "best", quiet)


def child_command(source: str | Path, overrides: Sequence[str], out: Path, run: CvRun,
                  threads: int) -> list[str]:
    """The command line a ``jobs > 1`` cv runs for one (fold, seed): a one-run shard."""
    command = [sys.executable, "-m", "twostream_das", "cv", "--config", str(source)]
    if overrides:
        command += ["--set", *overrides]
    return command + [
        "--out", str(out), "--folds", str(run.fold), "--seeds", str(run.seed), "--shard", "0/1",
        "--threads", str(threads), "--quiet",
    ]


def child_environment(threads: int, slot: int) -> dict[str, str]:
    """This process's environment with ``threads`` for every thread-count variable, and one
    GPU per job slot (round robin over the visible ones) where there are GPUs."""
    env = dict(os.environ)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):  # never a DDP rank
        env.pop(key, None)
    env.update({key: str(threads) for key in THREAD_VARIABLES})
    gpus = _visible_gpus()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


def _visible_gpus() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [g.strip() for g in listed.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _run_in_children(runs: Sequence[CvRun], source: str | Path, overrides: Sequence[str],
                     out: Path, jobs: int, threads: Optional[int]) -> list[RunResult]:
    """Every unfinished run as a child process, ``jobs`` at once; then all results, in order."""
    stored = {r.name: finished_result(r) for r in runs}  # before anything starts
    todo = [r for r in runs if stored[r.name] is None]
    for r in runs:
        if stored[r.name] is not None:
            logger.info("cv: %s is finished; reusing its results", r.name)
    cores = available_cores()
    per_run = threads or max(1, cores // jobs)
    if jobs * per_run > cores:
        logger.warning("cv: %d jobs x %d threads on %d cores: the runs will compete for cores",
                       jobs, per_run, cores)
    slots: queue.SimpleQueue[int] = queue.SimpleQueue()
    for slot in range(jobs):
        slots.put(slot)
    (out / LOG_FOLDER).mkdir(parents=True, exist_ok=True)

    def run_child(run: CvRun) -> Optional[str]:
        slot = slots.get()
        log = out / LOG_FOLDER / f"{run.name}.log"
        try:
            logger.info("cv: %s started (job slot %d, %d threads, log %s)",
                        run.name, slot, per_run, log)
            start = time.perf_counter()
            with open(log, "ab") as handle:
                done = subprocess.run(
                    child_command(source, overrides, out, run, per_run),
                    env=child_environment(per_run, slot), stdout=handle,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
                )
        finally:
            slots.put(slot)
        if done.returncode != 0:
            return f"{run.name} (exit {done.returncode}: {_last_line(log)}; log {log})"
        logger.info("cv: %s finished in %.1f s", run.name, time.perf_counter() - start)
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        failures = [f for f in pool.map(run_child, todo) if f is not None]
    if failures:
        raise CvRunFailed(f"{len(failures)} of {len(todo)} runs failed: " + "; ".join(failures))
    results = []
    for run in runs:
        result = stored[run.name] or finished_result(run)
        if result is None:
            raise CvRunFailed(f"{run.name} exited without error but {run.folder} has no results")
        results.append(RunResult(run.fold, run.seed, result))
    return results


def _last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"


def summarize(results: Sequence[RunResult]) -> dict[str, Any]:
    """Rows per run, per fold (mean over seeds) and the mean ± std over all runs."""
    streams = result_streams(results[0].results) if results else []
    for r in results:
        if result_streams(r.results) != streams:
            raise ConfigError(
                f"cv run fold {r.fold} seed {r.seed} has streams {result_streams(r.results)}; "
                f"expected {streams} like the first run"
            )
    columns = table_streams(streams)
    runs = [
        {
            "fold": r.fold,
            "seed": r.seed,
            "epoch": r.results.get("epoch"),
            "fusion_weights": r.results.get("fusion_weights"),
            **{s: {k: r.results[s][k] for k in METRIC_KEYS} for s, _ in columns},
        }
        for r in results
    ]
    folds = sorted({r.fold for r in results})
    per_fold = {
        str(k): {s: _mean_std([r for r in runs if r["fold"] == k], s) for s, _ in columns}
        for k in folds
    }
    overall = {s: _mean_std(runs, s) for s, _ in columns} if runs else {}
    return {
        "streams": streams,
        "runs": runs,
        "per_fold": per_fold,
        "summary": overall,
        "num_folds": len(folds),
        "seeds": sorted({r.seed for r in results}),
        "std": "sample standard deviation (ddof=1) over all fold x seed runs; 0 for one run",
    }


def _mean_std(runs: Sequence[dict[str, Any]], stream: str) -> dict[str, dict[str, float]]:
    out = {}
    for key in METRIC_KEYS:
        values = np.asarray([r[stream][key] for r in runs], dtype=np.float64)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[key] = {"mean": float(values.mean()), "std": std}
    return out


def markdown_table(summary: dict[str, Any]) -> str:
    """Per run, per-fold means and the overall mean ± std, for each stream."""
    header = "| stream | fold | seed | " + " | ".join(METRIC_KEYS) + " |"
    rule = "|---|---|---|" + "---:|" * len(METRIC_KEYS)
    lines = [header, rule]
    for stream, label in table_streams(summary["streams"]):
        for r in summary["runs"]:
            cells = " | ".join(f"{r[stream][k]:.1f}" for k in METRIC_KEYS)
            lines.append(f"| {label} | {r['fold']} | {r['seed']} | {cells} |")
        if len(summary["seeds"]) > 1:
            for fold, stats in summary["per_fold"].items():
                lines.append(f"| {label} | {fold} | mean | {_pm_cells(stats[stream])} |")
        lines.append(
            f"| **{label}** | **all** | **mean ± std** | {_pm_cells(summary['summary'][stream])} |"
        )
    return "\n".join(lines) + "\n"


def csv_table(summary: dict[str, Any]) -> str:
    """Long-form CSV: one row per (stream, fold, seed) plus ``mean`` and ``std`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["stream", "fold", "seed", *METRIC_KEYS])
    for stream, _ in table_streams(summary["streams"]):
        for r in summary["runs"]:
            writer.writerow(
                [stream, r["fold"], r["seed"], *(f"{r[stream][k]:.4f}" for k in METRIC_KEYS)]
            )
        for stat in ("mean", "std"):
            cells = (f"{summary['summary'][stream][k][stat]:.4f}" for k in METRIC_KEYS)
            writer.writerow([stream, "all", stat, *cells])
    return buffer.getvalue()


def write_tables(summary: dict[str, Any], out: Path) -> None:
    write_text(out / "summary.md", markdown_table(summary))
    write_text(out / "summary.csv", csv_table(summary))
    write_json(out / "summary.json", summary)


def _pm_cells(stats: dict[str, dict[str, float]]) -> str:
    return " | ".join(f"{stats[k]['mean']:.1f} ± {stats[k]['std']:.1f}" for k in METRIC_KEYS)
