"""Cross-validation: every fold and seed as its own resumable run, then one summary table.

``OUT/fold<k>_seed<s>/`` is a normal run folder (train + evaluate). The summary lists every run,
each fold's mean over seeds, and the mean ± sample standard deviation over all runs, for RGB
only, FLOW only and the fusion, as ``OUT/summary.{md,csv,json}``.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config, load_config
from .errors import ConfigError, DataError
from .evaluation import evaluate_run
from .runs import RunDir, is_main_process, read_json, write_json, write_text
from .selection import METRIC_KEYS
from .training import train

logger = logging.getLogger(__name__)

TABLE_STREAMS: tuple[tuple[str, str], ...] = (("rgb", "RGB"), ("flow", "FLOW"), ("fused", "fused"))


@dataclass(frozen=True)
class RunResult:
    fold: int
    seed: int
    results: dict[str, Any]  # evaluate_run's object


def available_folds(root: str | Path) -> list[int]:
    """Fold numbers k with a ``splits/test.split<k>.bundle`` under the dataset root."""
    folder = Path(root) / "splits"
    found = sorted(
        int(m.group(1))
        for p in folder.glob("test.split*.bundle")
        if (m := re.fullmatch(r"test\.split(\d+)\.bundle", p.name))
    )
    if not found:
        raise DataError(f"{folder} has no test.split<k>.bundle files; expected at least one fold")
    return found


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


def run_name(fold: int, seed: int) -> str:
    return f"fold{fold}_seed{seed}"


def run_cv(
    source: str | Path,
    overrides: Sequence[str],
    out: str | Path,
    folds: str = "all",
    seeds: Sequence[int] = (0,),
    quiet: bool = False,
) -> dict[str, Any]:
    """Train and evaluate every (fold, seed), then write the summary tables.

    Each run is ``load_config(source, overrides + ["train.seed=<s>"])`` in ``OUT/fold<k>_seed<s>``;
    rerunning resumes unfinished runs and reuses finished ones.
    """
    out = Path(out)
    base = load_config(source, list(overrides))
    results = []
    for fold in parse_folds(folds, base.dataset.root):
        for seed in seeds:
            cfg = load_config(source, [*overrides, f"train.seed={seed}"])
            results.append(
                RunResult(fold, seed, cv_run(cfg, fold, out / run_name(fold, seed), quiet))
            )
    summary = summarize(results)
    if is_main_process():
        write_tables(summary, out)
    return summary


def cv_run(cfg: Config, fold: int, folder: Path, quiet: bool) -> dict[str, Any]:
    """One fold and seed: train (or resume), then evaluate (or reuse a matching results.json)."""
    logger.info("cv: fold %d, seed %d -> %s", fold, cfg.train.seed, folder)
    trained = train(cfg, fold, folder, quiet)
    run = RunDir(folder)
    if trained.already_finished and run.results_json.is_file():
        stored = read_json(run.results_json)
        if stored.get("checkpoint") == "best":  # not a manual ``evaluate --checkpoint last``
            return stored
    return evaluate_run(folder, "best", quiet)


def summarize(results: Sequence[RunResult]) -> dict[str, Any]:
    """Rows per run, per fold (mean over seeds) and the mean ± std over all runs."""
    runs = [
        {
            "fold": r.fold,
            "seed": r.seed,
            "epoch": r.results.get("epoch"),
            "fusion_weights": r.results.get("fusion_weights"),
            **{s: {k: r.results[s][k] for k in METRIC_KEYS} for s, _ in TABLE_STREAMS},
        }
        for r in results
    ]
    folds = sorted({r.fold for r in results})
    per_fold = {
        str(k): {s: _mean_std([r for r in runs if r["fold"] == k], s) for s, _ in TABLE_STREAMS}
        for k in folds
    }
    overall = {s: _mean_std(runs, s) for s, _ in TABLE_STREAMS}
    return {
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
    for stream, label in TABLE_STREAMS:
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
    for stream, _ in TABLE_STREAMS:
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
