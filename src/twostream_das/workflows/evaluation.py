"""``evaluate``: score a run's selected checkpoint on its fold's test videos.

This is the only place that reads test labels, and it runs after training and selection are
done. It writes ``RUN_DIR/results.json`` and, into ``RUN_DIR/predictions/``, the files ``predict``
writes per video (:func:`~.prediction.write_video_outputs` without the barcode): ``<video>.txt``
(fused), ``streams/<stream>/<video>.txt`` (each stream before fusion), ``_segments.csv/json``,
``_probs.npy`` and, with ``--samples`` > 1, ``_uncertainty.npy``; ``report`` shows them.

Under ``torchrun`` (:mod:`twostream_das.distributed`, a gloo group) each rank predicts a
disjoint share of the test videos (balanced by feature-file size) and writes their prediction
files; rank 0 holds the run's lock, gathers each video's labels and per-frame uncertainty parts
and writes ``results.json`` exactly as one process does (videos in the split's order).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..config import Config
from ..data.dataset import load_videos
from ..data.features import feature_bytes, feature_path
from ..data.layout import check_background, read_mapping, read_split
from ..distributed import (
    agreed,
    broadcast_from_main,
    gather_in_order,
    local_device,
    my_share,
    process_group,
    rank_and_world,
    rank_threads,
)
from ..errors import CheckpointError
from ..metrics import METRIC_KEYS
from ..prediction.inference import LoadedModel, load_model, predict, with_sampling
from ..prediction.uncertainty import ErrorDetection
from ..runs import RunDir, locked, read_json, refuse_older_run, write_json
from ..runtime import resolve_device
from .prediction import write_video_outputs
from .selection import score_rows

logger = logging.getLogger(__name__)


def evaluate_run(
    run_dir: str | Path,
    which: str = "best",
    quiet: bool = False,
    steps: Optional[int] = None,
    samples: Optional[int] = None,
    write: bool = True,
    threads: Optional[int] = None,
    *,
    sampler: Optional[str] = None,
    views: Optional[str] = None,
    fast: bool = False,
) -> dict[str, Any]:
    """Score ``checkpoints/<which>.pt`` of a run on the test videos of its fold.

    ``sampler`` / ``steps`` / ``samples`` / ``views`` override the checkpoint's ``eval.sampler``
    / ``eval.steps`` / ``eval.samples`` / ``eval.views`` (the sampler, its steps, samples per
    video and stream, the offset views); ``fast`` sets
    :data:`~twostream_das.config.FAST_SAMPLING` first, the values given win over it
    (:func:`~twostream_das.prediction.inference.with_sampling`). The results record them, the
    prediction time per video and ``uncertainty``: how well the uncertainty finds wrong frames
    and how calibrated the fused probabilities are
    (:class:`twostream_das.prediction.uncertainty.ErrorDetection`).
    ``write=False`` returns the results without writing results.json or predictions/.
    ``threads``: torch CPU threads (:func:`~twostream_das.distributed.rank_threads`). Under
    ``torchrun`` the test videos are sharded over the ranks (module docstring);
    ``seconds_per_video`` is then the job's wall time per video.

    Returns:
        ``{<stream>: M, ..., "fused": M, "fusion_weights": {...}, "postprocess": {...},
        "epoch": E, "fold": K, "checkpoint": which, "num_videos": N}`` with each M holding
        acc, edit, f1@10, f1@25, f1@50 in percent. The same object is written to results.json.

    Raises:
        CheckpointError: not a run folder, the checkpoint is missing, or the folder is of an
            older version (naming `twostream-das upgrade RUN --out NEW_RUN`).
    """
    rank_threads(threads)  # every rank alike: before any collective
    run = RunDir(Path(run_dir))
    if not run.run_json.is_file():
        raise CheckpointError(f"{run.root} is not a twostream_das run folder (no run.json)")
    refuse_older_run(run)
    path = run.checkpoint(which)
    if not path.is_file():
        raise CheckpointError(
            f"{path} does not exist; train the run first (twostream-das train ... --out {run.root})"
        )
    with process_group(torch.device("cpu"), backend="gloo"), locked(run, "evaluate"):
        sampling = {"steps": steps, "samples": samples, "sampler": sampler, "views": views,
                    "fast": fast}
        return _evaluate(run, path, which, quiet, sampling, write)


@dataclass(frozen=True)
class _Scored:
    """What rank 0 needs of one test video predicted on any rank (no probabilities)."""

    index: int  # the video's place in the split
    labels: dict[str, np.ndarray]  # "gt", each stream, "fused": (T,)
    detection: dict[str, np.ndarray]  # ErrorDetection.video_parts


def _evaluate(
    run: RunDir,
    path: Path,
    which: str,
    quiet: bool,
    sampling: dict[str, Any],
    write: bool = True,
) -> dict[str, Any]:
    rank, world = rank_and_world()
    with agreed():
        fold = int(read_json(run.run_json)["fold"])
        device = local_device(resolve_device("auto"))
        loaded = load_model(path, device)
        cfg = with_sampling(loaded.config, **sampling)
        root = Path(cfg.dataset.root)
        label_map = read_mapping(root / "mapping.txt")
        check_background(label_map, cfg.dataset.background)
        if list(label_map.names) != loaded.label_names:
            raise CheckpointError(
                f"{root / 'mapping.txt'} lists other classes than {path} was trained on"
            )
        names = read_split(root, "test", fold)
        streams = cfg.dataset.streams.values()
        mine = my_share(
            {n: feature_bytes(feature_path(root, n, s) for s in streams) for n in names}
        )
        videos = load_videos(
            cfg.dataset, [n for n in names if n in mine], label_map,
            expected_dims=loaded.checkpoint.stream_dims, expected_from=f"the checkpoint {path}",
        )  # fmt: skip
    if world > 1:
        logger.info("rank %d of %d: %d of %d test videos", rank, world, len(videos), len(names))
    if loaded.checkpoint.selection is None and rank == 0:
        logger.warning(
            "%s has no validation selection yet (training unfinished); using the configured "
            "fusion weights and post-processing",
            path,
        )
    weights, post = loaded.fusion_weights, loaded.postprocess
    method = loaded.fusion_method
    detection = ErrorDetection(post)
    written_as = dataclasses.replace(loaded, config=cfg)  # the sampling the files come from
    index = {name: i for i, name in enumerate(names)}
    done: list[_Scored] = []
    desc = "test" if world == 1 else f"test (rank {rank}/{world})"
    start = time.perf_counter()
    with agreed():
        for pred in predict(loaded.model, videos, cfg, weights, post, device, not quiet, desc,
                            method):  # fmt: skip
            labels = pred.label_rows()
            assert labels is not None  # test videos have labels (load_videos read them)
            parts = detection.video_parts(
                pred.video.fused_sample_probs(cfg.fusion.input, weights, method), pred.decision,
                pred.video.labels, pred.video.sample_rate,
            )
            done.append(_Scored(index[pred.name], labels, parts))
            if write:  # every rank writes the files of its own videos, as predict does
                write_video_outputs(pred, written_as, run.predictions, cfg.dataset.fps, False)
    scored = gather_in_order(done, key=lambda v: v.index)
    results: Optional[dict[str, Any]] = None
    with agreed():
        if scored is not None:  # rank 0 (or the only process): every video, in split order
            seconds = time.perf_counter() - start  # prediction, fusion, post-processing, writing
            results = _results(loaded, cfg, scored, which, fold, len(names), seconds)
            if write:
                write_json(run.results_json, results)
            logger.info(
                "fold %d test (%d videos): %s", fold, len(names), format_row(results["fused"])
            )
    return broadcast_from_main(results)


def _results(
    loaded: LoadedModel,
    cfg: Config,
    scored: Sequence[_Scored],
    which: str,
    fold: int,
    num_videos: int,
    seconds: float,
) -> dict[str, Any]:
    """``results.json`` from every test video's labels and uncertainty parts, in split order."""
    results: dict[str, Any] = score_rows(
        [v.labels for v in scored], (*loaded.model.stream_names, "fused"), loaded.label_names, cfg
    )
    method = loaded.fusion_method
    detection = ErrorDetection(loaded.postprocess)
    for video in scored:
        detection.add_parts(video.detection)
    results.update(
        {
            "fusion_weights": loaded.fusion_weights.to_dict(),
            "fusion_input": cfg.fusion.input.value,
            "fusion_sampling": cfg.fusion.sampling.value,
            "fusion_rule": method.rule.value,
            "temperatures": dict(method.temperatures),
            "postprocess": loaded.postprocess.to_dict(),
            "epoch": loaded.checkpoint.epoch,
            "fold": fold,
            "checkpoint": which,
            "num_videos": num_videos,
            "average": cfg.eval.average.value,
            "sampler": cfg.eval.sampler,
            "steps": cfg.eval.steps,
            "views": cfg.eval.views.value,
            "timestep_spacing": cfg.eval.timestep_spacing.value,
            "samples": cfg.eval.samples,
            "seconds_per_video": round(seconds / max(num_videos, 1), 4),
            "uncertainty": detection.summary(),
        }
    )
    return results


def format_row(metrics: dict[str, float]) -> str:
    return " ".join(f"{k} {metrics[k]:.1f}" for k in METRIC_KEYS)


def sampling_line(results: dict[str, Any]) -> str:
    """How the scores were sampled, in words: ``sampling: ddim, 25 steps (linear grid), 1
    sample per video and stream, views all``. Results files of older versions lack some keys
    (``ddim_steps`` named the steps); what is missing is left out."""
    steps = results.get("steps", results.get("ddim_steps"))
    parts = [str(results.get("sampler", "ddim"))]
    if steps is not None:
        spacing = results.get("timestep_spacing")
        parts.append(f"{steps} steps" + (f" ({spacing} grid)" if spacing else ""))
    if "samples" in results:
        count = int(results["samples"])
        parts.append(f"{count} sample{'s' if count != 1 else ''} per video and stream")
    if "views" in results:
        parts.append(f"views {results['views']}")
    return "sampling: " + ", ".join(parts)


def results_table(results: dict[str, Any]) -> str:
    """A Markdown table: one row per stream alone (``RGB only``), then the fusion; under it
    the sampling the scores come from (:func:`sampling_line`)."""
    header = "| stream | " + " | ".join(METRIC_KEYS) + " |"
    rule = "|---|" + "---:|" * len(METRIC_KEYS)
    names = {s: f"{s.upper()} only" for s in results["fusion_weights"]}
    names["fused"] = "fused"
    lines = [header, rule]
    for key, label in names.items():
        lines.append(
            f"| {label} | " + " | ".join(f"{results[key][k]:.1f}" for k in METRIC_KEYS) + " |"
        )
    return "\n".join([*lines, "", sampling_line(results)])
