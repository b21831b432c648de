"""Validation during training (each stream and the fusion, the best checkpoint) and the end of
a run: fusion weights and post-processing selected on validation videos only."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, Optional

from ...checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ...choices import FusionWeights, PostprocessChoice, Selection, StreamMetrics
from ...config import stream_names
from ...metrics import METRIC_KEYS
from ...prediction.fusion import FusionMethod
from ...prediction.inference import VideoProbs, joint_fusion, predict_probabilities
from ...runs import is_main_process, write_json
from ..selection import JointRunner, fit_temperatures, score_streams, select, selection_score
from .log import VALIDATION_PREFIX
from .state import TrainContext, save_best, save_last, snapshot

logger = logging.getLogger(__name__)


def is_eval_epoch(ctx: TrainContext, epoch: int) -> bool:
    return bool(ctx.data.val) and (
        epoch % ctx.cfg.train.eval_every == 0 or epoch == ctx.cfg.train.epochs
    )


def validate(ctx: TrainContext, epoch: int) -> tuple[list[VideoProbs], StreamMetrics]:
    """Both streams and their fusion (configured weights, rule and post-processing; the
    temperatures fitted on these videos when ``fusion.temperature``, except inside a joint
    sampler, which runs before they are known) on the validation videos."""
    weights = FusionWeights.from_config(ctx.cfg)
    joint = joint_fusion(ctx.cfg, ctx.model.stream_names, weights, FusionMethod.from_config(
        ctx.cfg.fusion))  # fmt: skip
    videos = list(
        predict_probabilities(
            ctx.model, ctx.data.val, ctx.cfg, ctx.device, ctx.show_progress, f"val {epoch}", joint
        )
    )
    metrics = score_streams(
        videos,
        ctx.data.label_names,
        ctx.cfg,
        weights,
        PostprocessChoice.from_config(ctx.cfg),
        FusionMethod.from_config(ctx.cfg.fusion, fit_temperatures(videos, ctx.cfg)),
    )
    return videos, metrics


def joint_runner(ctx: TrainContext, videos: list[VideoProbs]) -> JointRunner:
    """The validation videos sampled jointly by ``ctx.model`` as it is when called (selection
    of the weights of ``fusion.sampling = joint``), attached to ``videos``, their separate
    samples by the same weights."""

    def run(weights: Mapping[str, float], method: FusionMethod) -> list[VideoProbs]:
        fusion = joint_fusion(ctx.cfg, ctx.model.stream_names, weights, method)
        fused = predict_probabilities(
            ctx.model, ctx.data.val, ctx.cfg, ctx.device, False, "val joint", fusion, False
        )
        return [
            replace(v, joint_samples=j.joint_samples, joint_trajectories=j.joint_trajectories)
            for v, j in zip(videos, fused, strict=True)
        ]

    return run


def validation_row(ctx: TrainContext, epoch: int) -> dict[str, Any]:
    """Validate, keep the best checkpoint, and return the metrics.csv columns."""
    videos, metrics = validate(ctx, epoch)
    value = selection_score(metrics["fused"], ctx.cfg.train.select_metric)
    ctx.val_cache = {k: v for k, v in ctx.val_cache.items() if k == ctx.progress.best_epoch}
    ctx.val_cache[epoch] = videos
    if value > ctx.progress.best_score:
        ctx.progress.best_score, ctx.progress.best_epoch = value, epoch
        ctx.val_cache = {epoch: videos}
        save_best(ctx, metrics)
    logger.info(
        "epoch %d validation: fused %s %.2f (%s); best epoch %d",
        epoch,
        ctx.cfg.train.select_metric,
        value,
        ", ".join(
            f"{s} {selection_score(metrics[s], ctx.cfg.train.select_metric):.2f}"
            for s in stream_names(ctx.cfg)
        ),
        ctx.progress.best_epoch,
    )
    row = {
        f"{VALIDATION_PREFIX}_{s}_{k}": round(metrics[s][k], 4)
        for s in metrics
        for k in METRIC_KEYS
    }
    row["val_score"] = round(value, 4)
    return row


def finish(ctx: TrainContext) -> Optional[Selection]:
    """Select fusion weights (and post-processing) on validation for ``best.pt`` and
    ``last.pt``, store them, and mark the run finished (``last.pt`` last, so a kill in between
    just repeats this step)."""
    if not ctx.data.val:
        logger.warning(
            "no validation videos (dataset.val_fraction = %s): keeping the last epoch and the "
            "configured fusion weights",
            ctx.cfg.dataset.val_fraction,
        )
        selection = Selection.configured(ctx.cfg, ctx.epoch)
        if is_main_process():
            save_checkpoint(
                ctx.run.best, snapshot(ctx, with_optimizer=False, selection=selection)
            )
        ctx.progress.finished = True
        save_last(ctx, selection)
        write_selection(ctx, selection, selection)
        return selection
    best = load_checkpoint(ctx.run.best)
    same = best.epoch == ctx.epoch
    videos = val_probs(ctx, ctx.epoch)
    last_selection = select(
        videos, ctx.data.label_names, ctx.cfg, ctx.epoch,
        f"{ctx.run.last.name} and {ctx.run.best.name}" if same else ctx.run.last.name,
        joint_runner(ctx, videos),
    )  # fmt: skip
    if same:
        best_selection = last_selection
    else:
        with weights_of(ctx, best):
            videos = val_probs(ctx, best.epoch)
            best_selection = select(
                videos, ctx.data.label_names, ctx.cfg, best.epoch, ctx.run.best.name,
                joint_runner(ctx, videos),
            )  # fmt: skip
    if is_main_process():
        best.selection = best_selection
        best.metrics = best_selection.metrics
        save_checkpoint(ctx.run.best, best)
    ctx.progress.finished = True
    save_last(ctx, last_selection)
    write_selection(ctx, best_selection, last_selection)
    return best_selection


def val_probs(ctx: TrainContext, epoch: int) -> list[VideoProbs]:
    """Validation probabilities at ``epoch``: cached from training, or predicted again with
    the model's weights as they are (same generators, so the same numbers)."""
    if epoch in ctx.val_cache:
        return ctx.val_cache[epoch]
    videos, _ = validate(ctx, epoch)
    return videos


@contextlib.contextmanager
def weights_of(ctx: TrainContext, ckpt: Checkpoint) -> Iterator[None]:
    """``ctx.model`` with the weights of ``ckpt`` inside the block, its own again after."""
    current = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}
    ctx.model.load_state_dict(ckpt.weights)
    try:
        yield
    finally:
        ctx.model.load_state_dict(current)


def write_selection(ctx: TrainContext, best: Selection, last: Selection) -> None:
    if is_main_process():
        write_json(ctx.run.selection_json, {"best": best.to_dict(), "last": last.to_dict()})
