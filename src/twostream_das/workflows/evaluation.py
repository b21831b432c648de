"""``evaluate``: score a run's selected checkpoint on its fold's test videos.

This is the only place that reads test labels, and it runs after training and selection are
done. It writes ``RUN_DIR/results.json``, ``RUN_DIR/predictions/<video>.txt`` (fused) and
``RUN_DIR/predictions/streams/<stream>/<video>.txt`` (each stream before fusion).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional

from ..data.dataset import load_videos
from ..data.layout import check_background, read_mapping, read_split
from ..errors import CheckpointError
from ..inference import load_model, predict, sampling_steps, with_sampling
from ..io import STREAMS_DIR, write_prediction
from ..metrics import METRIC_KEYS
from ..runs import RunDir, is_main_process, locked, read_json, write_json
from ..runtime import resolve_device
from ..uncertainty import ErrorDetection
from .selection import score_labels

logger = logging.getLogger(__name__)


def evaluate_run(
    run_dir: str | Path,
    which: str = "best",
    quiet: bool = False,
    steps: Optional[int] = None,
    samples: Optional[int] = None,
    write: bool = True,
) -> dict[str, Any]:
    """Score ``checkpoints/<which>.pt`` of a run on the test videos of its fold.

    ``steps`` / ``samples`` override the checkpoint's ``eval.steps`` / ``eval.samples`` (DDIM
    steps; samples per video and stream); the results record both, the prediction time per
    video and ``uncertainty``: how well the uncertainty finds wrong frames and how calibrated
    the fused probabilities are (:class:`twostream_das.uncertainty.ErrorDetection`).
    ``write=False`` returns the results without writing results.json or predictions/.

    Returns:
        ``{<stream>: M, ..., "fused": M, "fusion_weights": {...}, "postprocess": {...},
        "epoch": E, "fold": K, "checkpoint": which, "num_videos": N}`` with each M holding
        acc, edit, f1@10, f1@25, f1@50 in percent. The same object is written to results.json.

    Raises:
        CheckpointError: not a run folder, or the checkpoint is missing.
    """
    run = RunDir(Path(run_dir))
    if not run.run_json.is_file():
        raise CheckpointError(f"{run.root} is not a twostream_das run folder (no run.json)")
    path = run.checkpoint(which)
    if not path.is_file():
        raise CheckpointError(
            f"{path} does not exist; train the run first (twostream-das train ... --out {run.root})"
        )
    with locked(run, "evaluate"):
        return _evaluate(run, path, which, quiet, steps, samples, write)


def _evaluate(
    run: RunDir,
    path: Path,
    which: str,
    quiet: bool,
    steps: Optional[int],
    samples: Optional[int],
    write: bool = True,
) -> dict[str, Any]:
    fold = int(read_json(run.run_json)["fold"])
    device = resolve_device("auto")
    loaded = load_model(path, device)
    cfg = with_sampling(loaded.config, steps, samples)
    if loaded.checkpoint.selection is None:
        logger.warning(
            "%s has no validation selection yet (training unfinished); using the configured "
            "fusion weights and post-processing",
            path,
        )
    root = Path(cfg.dataset.root)
    label_map = read_mapping(root / "mapping.txt")
    check_background(label_map, cfg.dataset.background)
    if list(label_map.names) != loaded.label_names:
        raise CheckpointError(
            f"{root / 'mapping.txt'} lists other classes than {path} was trained on"
        )
    videos = load_videos(
        cfg.dataset, read_split(root, "test", fold), label_map,
        expected_dims=loaded.checkpoint.stream_dims, expected_from=f"the checkpoint {path}",
    )
    weights, post = loaded.fusion_weights, loaded.postprocess
    gts, fused = [], []
    per_stream: dict[str, list[Any]] = {s: [] for s in loaded.model.stream_names}
    method = loaded.fusion_method
    detection = ErrorDetection(weights, post, method)
    start = time.perf_counter()
    for pred in predict(
        loaded.model, videos, cfg, weights, post, device, not quiet, "test", method
    ):
        gts.append(pred.video.labels)
        fused.append(pred.decision.labels)
        detection.add(
            pred.video.sample_inputs(cfg.fusion.input), pred.decision, pred.video.labels,
            pred.video.sample_rate,
        )
        for stream, labels in pred.decision.stream_labels.items():
            per_stream[stream].append(labels)
        if write and is_main_process():
            write_prediction(
                run.predictions / f"{pred.name}.txt", pred.decision.labels, loaded.label_names
            )
            for stream, labels in pred.decision.stream_labels.items():
                write_prediction(
                    run.predictions / STREAMS_DIR / stream / f"{pred.name}.txt",
                    labels,
                    loaded.label_names,
                )
    seconds = time.perf_counter() - start  # prediction, fusion, post-processing, writing
    results: dict[str, Any] = {
        s: score_labels(gts, per_stream[s], loaded.label_names, cfg) for s in per_stream
    }
    results["fused"] = score_labels(gts, fused, loaded.label_names, cfg)
    results.update(
        {
            "fusion_weights": weights.to_dict(),
            "fusion_input": cfg.fusion.input.value,
            "fusion_rule": method.rule.value,
            "temperatures": dict(method.temperatures),
            "postprocess": post.to_dict(),
            "epoch": loaded.checkpoint.epoch,
            "fold": fold,
            "checkpoint": which,
            "num_videos": len(videos),
            "average": cfg.eval.average.value,
            "ddim_steps": sampling_steps(loaded, cfg),
            "samples": cfg.eval.samples,
            "seconds_per_video": round(seconds / max(len(videos), 1), 4),
            "uncertainty": detection.summary(),
        }
    )
    if write and is_main_process():
        write_json(run.results_json, results)
    logger.info("fold %d test (%d videos): %s", fold, len(videos), format_row(results["fused"]))
    return results


def format_row(metrics: dict[str, float]) -> str:
    return " ".join(f"{k} {metrics[k]:.1f}" for k in METRIC_KEYS)


def results_table(results: dict[str, Any]) -> str:
    """A Markdown table: one row per stream alone (``RGB only``), then the fusion."""
    header = "| stream | " + " | ".join(METRIC_KEYS) + " |"
    rule = "|---|" + "---:|" * len(METRIC_KEYS)
    names = {s: f"{s.upper()} only" for s in results["fusion_weights"]}
    names["fused"] = "fused"
    lines = [header, rule]
    for key, label in names.items():
        lines.append(
            f"| {label} | " + " | ".join(f"{results[key][k]:.1f}" for k in METRIC_KEYS) + " |"
        )
    return "\n".join(lines)
