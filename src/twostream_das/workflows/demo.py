"""``demo``: the whole pipeline on a generated dataset, in a few minutes on a laptop CPU.

Folder layout (default ``./twostream_das_demo``)::

    demo.json     marks the folder as a demo folder (what was run, with which version)
    data/         the generated dataset (MS-TCN layout, RGB and FLOW feature folders)
    run/          fold 1 trained with the ``demo`` preset (a normal run folder)
    predict/      ``predict`` on one test video: prediction, segments, probabilities, barcode PNG
    results.json  the test results (RGB only, FLOW only, fused) and the table, and
                  ``uncertainty_by_samples``: for K = 1, 4, 8 DDIM samples, the AUROC of the
                  uncertainty for finding wrong test frames and the calibration error (ECE)
    report.html   ``report`` of run/: timelines and segments of the test videos, the scores,
                  the fusion weights, per-class F1 and the confusion matrix

Rerunning into an existing demo folder resumes (or, when finished, re-evaluates and reprints);
a folder that exists and is not a demo folder is refused, never overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .._version import __version__
from ..config import load_config
from ..data.demo import DEMO_PRESET, make_demo
from ..data.layout import read_split
from ..errors import CheckpointError
from ..metrics import METRIC_KEYS
from ..runs import RunDir, read_json, write_json
from ..tools.report import write_report
from .evaluation import evaluate_run, results_table
from .prediction import predict_files
from .training import train

logger = logging.getLogger(__name__)

DEFAULT_DEMO_DIR = Path("twostream_das_demo")
DEMO_FOLD = 1
DEMO_DATA_SEED = 0
MARKER = "demo.json"
UNCERTAINTY_SAMPLES = (1, 4, 8)  # K of results.json's uncertainty_by_samples


@dataclass(frozen=True)
class DemoResult:
    out: Path
    results: dict[str, Any]
    table: str
    plot: Path
    report: Path
    fusion_gain: dict[str, float]  # metric -> fused minus the better single stream


def prepare_demo_folder(out: Path) -> None:
    """Create ``out`` or accept an earlier demo folder; refuse anything else."""
    marker = out / MARKER
    if out.exists() and not marker.is_file():
        if not out.is_dir() or any(out.iterdir()):
            raise CheckpointError(
                f"{out} exists and is not a twostream_das demo folder (no {MARKER}); refusing to "
                f"write into it. Pass --out with a new folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        write_json(marker, {"version": __version__, "preset": DEMO_PRESET, "fold": DEMO_FOLD})


def demo_dataset(out: Path, seed: int = DEMO_DATA_SEED) -> Path:
    """The generated dataset root under ``out/data`` (generated once, reused afterwards).

    Raises:
        CheckpointError: ``out`` holds a demo made from another data seed (its run would
            resume on different data).
    """
    folder = out / "data"
    stored = out / MARKER
    meta = read_json(stored)
    made_with = int(meta.get("data_seed", DEMO_DATA_SEED))  # folders before the option: seed 0
    if "data_root" in meta and made_with != seed:
        raise CheckpointError(
            f"{out} holds a demo made with data seed {made_with}, not {seed}; pass --out with a "
            f"new folder for --data-seed {seed}"
        )
    if "data_root" in meta and (Path(meta["data_root"]) / "mapping.txt").is_file():
        return Path(meta["data_root"])
    logger.info("generating the demo dataset in %s (seed %d)", folder, seed)
    root = Path(make_demo(folder, seed=seed))
    write_json(stored, {**meta, "data_root": str(root.resolve()), "data_seed": seed})
    return root.resolve()


def run_demo(
    out: Optional[str | Path] = None,
    quiet: bool = False,
    overrides: Sequence[str] = (),
    data_seed: int = DEMO_DATA_SEED,
) -> DemoResult:
    """Generate data, train fold 1, select on validation, evaluate on test, predict and plot.

    ``overrides`` are extra ``key=value`` settings on top of the demo preset; ``data_seed``
    seeds the generated dataset (``train.seed`` seeds training).
    """
    out = Path(out) if out is not None else DEFAULT_DEMO_DIR
    prepare_demo_folder(out)
    root = demo_dataset(out, data_seed)
    cfg = load_config(DEMO_PRESET, [f"dataset.root={root}", *overrides])
    run = RunDir(out / "run")
    train(cfg, DEMO_FOLD, run.root, quiet)
    results = evaluate_run(run.root, "best", quiet)
    video = read_split(root, "test", DEMO_FOLD)[0]
    predict_files(
        run.best,
        {s: root / spec.folder / f"{video}.npy" for s, spec in cfg.dataset.streams.items()},
        out / "predict",
        labels_dir=root / "groundTruth",
        quiet=quiet,
        overwrite=True,  # the demo's own folder (MARKER): a rerun renews its prediction
    )
    gain = fusion_gain(results)
    table = results_table(results)
    by_samples = {
        str(k): (results if k == results["samples"] else evaluate_run(
            run.root, "best", True, samples=k, write=False))["uncertainty"]
        for k in UNCERTAINTY_SAMPLES
    }  # fmt: skip
    write_json(
        out / "results.json",
        {**results, "fusion_gain": gain, "table": table, "uncertainty_by_samples": by_samples},
    )
    page = write_report(run.root, out / "report.html")
    return DemoResult(out, results, table, out / "predict" / f"{video}.png", page, gain)


def fusion_gain(results: dict[str, Any]) -> dict[str, float]:
    """Per metric, fused minus the best single stream (positive: fusion beats every stream)."""
    streams = list(results["fusion_weights"])
    return {
        k: round(results["fused"][k] - max(results[s][k] for s in streams), 2)
        for k in METRIC_KEYS
    }
