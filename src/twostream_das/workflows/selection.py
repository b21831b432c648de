"""Choices made on validation videos only: the epoch, the fusion weights, the post-processing.

The validation videos are carved out of a fold's training videos (``dataset.val_fraction``,
``dataset.val_seed`` or ``splits/val.split<k>.bundle``); test videos never reach this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Optional

import numpy as np

from ..choices import FusionWeights, PostprocessChoice, Selection, StreamMetrics
from ..config import Config, FusionSampling, PostprocessKind, stream_names
from ..metrics import METRIC_KEYS, score  # METRIC_KEYS: reported for every split, in percent
from ..prediction.fusion import (
    FusionMethod,
    closest_to_equal,
    fit_temperature,
    search_weights,
    simplex_grid,
)
from ..prediction.inference import VideoProbs, decide_video, video_fused_labels

logger = logging.getLogger(__name__)

JointRunner = Callable[[Mapping[str, float], FusionMethod], list[VideoProbs]]
"""(weights, method) -> the validation videos, in order, with the joint samples of fusion inside
the sampler at these weights (:attr:`VideoProbs.joint_samples`)."""


def background_ids(label_names: Sequence[str], cfg: Config) -> list[int]:
    """Ids of ``dataset.background`` classes that exist in the label map (Edit/F1 drop them)."""
    return [i for i, name in enumerate(label_names) if name in set(cfg.dataset.background)]


def score_labels(
    gts: Sequence[np.ndarray], preds: Sequence[np.ndarray], label_names: Sequence[str], cfg: Config
) -> dict[str, float]:
    """Acc, Edit, F1@{10,25,50} (percent) of one split, aggregated as ``eval.average`` says."""
    result = score(list(gts), list(preds), background_ids(label_names, cfg), cfg.eval.average)
    return {k: float(result[k]) for k in METRIC_KEYS}


def score_rows(
    rows: Sequence[Mapping[str, np.ndarray]],
    keys: Sequence[str],
    label_names: Sequence[str],
    cfg: Config,
) -> dict[str, dict[str, float]]:
    """:func:`score_labels` of each of ``keys`` (e.g. the streams and ``"fused"``) against
    ``"gt"``, over videos given as
    :meth:`~twostream_das.prediction.inference.VideoPrediction.label_rows`."""
    gts = [r["gt"] for r in rows]
    return {k: score_labels(gts, [r[k] for r in rows], label_names, cfg) for k in keys}


def selection_score(metrics: Mapping[str, float], metric: str) -> float:
    """The number validation maximises: one metric, or ``mean`` of all five."""
    if metric == "mean":
        return float(np.mean([metrics[k] for k in METRIC_KEYS]))
    return float(metrics[metric])


def score_streams(
    videos: Sequence[VideoProbs],
    label_names: Sequence[str],
    cfg: Config,
    weights: Mapping[str, float],
    post: PostprocessChoice,
    method: Optional[FusionMethod] = None,
) -> StreamMetrics:
    """Metrics of each stream alone and of the fusion, all post-processed with ``post``."""
    decisions = [decide_video(v, weights, post, method, cfg.fusion.input) for v in videos]
    gts = [_labels(v) for v in videos]
    out = {
        s: score_labels(gts, [d.stream_labels[s] for d in decisions], label_names, cfg)
        for s in weights
    }
    out["fused"] = score_labels(gts, [d.labels for d in decisions], label_names, cfg)
    return out


def fit_temperatures(videos: Sequence[VideoProbs], cfg: Config) -> dict[str, float]:
    """Per stream, the temperature fitted on these (validation) videos; {} when
    ``fusion.temperature`` is off."""
    if not cfg.fusion.temperature:
        return {}
    gts = [_labels(v) for v in videos]
    return {
        s: fit_temperature(
            [v.full_rate(v.for_fusion(cfg.fusion.input)[s]) for v in videos],
            gts,
            cfg.fusion.temperature_bounds,
            cfg.fusion.prob_floor,
        )
        for s in stream_names(cfg)
    }


def select_fusion_weights(
    videos: Sequence[VideoProbs],
    label_names: Sequence[str],
    cfg: Config,
    post: PostprocessChoice,
    method: Optional[FusionMethod] = None,
) -> tuple[FusionWeights, float]:
    """Grid search of one weight per stream over [0, 1]^n, step ``fusion.grid_step``, on
    validation (one stream: weight 1)."""
    gts, kind = [_labels(v) for v in videos], cfg.fusion.input

    def fused_score(weights: Mapping[str, float]) -> float:
        preds = [video_fused_labels(v, weights, post, method, kind) for v in videos]
        return selection_score(score_labels(gts, preds, label_names, cfg), cfg.train.select_metric)

    found = search_weights(cfg.fusion.grid_step, stream_names(cfg), fused_score)
    return FusionWeights.of(found.weights, stream_names(cfg)), float(found.score)


def postprocess_candidates(cfg: Config) -> list[PostprocessChoice]:
    """Every kind with every ``postprocess.candidate_windows`` (and ``none`` once).

    ``diffact_purge`` (DiffAct's rule, for reproducing it) is a candidate only when it is the
    configured kind: otherwise the search would weigh two purges.
    """
    out = [PostprocessChoice(PostprocessKind.NONE, 1)]
    skip = {PostprocessKind.NONE}
    if cfg.postprocess.kind is not PostprocessKind.DIFFACT_PURGE:
        skip.add(PostprocessKind.DIFFACT_PURGE)
    for kind in PostprocessKind:
        if kind not in skip:
            out += [PostprocessChoice(kind, w) for w in cfg.postprocess.candidate_windows]
    return out


def select_postprocess(
    videos: Sequence[VideoProbs],
    label_names: Sequence[str],
    cfg: Config,
    weights: Mapping[str, float],
    method: Optional[FusionMethod] = None,
) -> tuple[PostprocessChoice, float]:
    """The post-processing (kind, window) with the best fused validation score.

    Ties keep the earlier candidate; the configured choice is tried first, so it wins ties.
    """
    gts, kind = [_labels(v) for v in videos], cfg.fusion.input
    configured = PostprocessChoice.from_config(cfg)
    candidates = [configured] + [c for c in postprocess_candidates(cfg) if c != configured]
    best_choice, best_score = configured, -np.inf
    for choice in candidates:
        preds = [video_fused_labels(v, weights, choice, method, kind) for v in videos]
        value = selection_score(score_labels(gts, preds, label_names, cfg), cfg.train.select_metric)
        if value > best_score:
            best_choice, best_score = choice, value
    return best_choice, float(best_score)


def select(
    videos: Sequence[VideoProbs],
    label_names: Sequence[str],
    cfg: Config,
    epoch: int,
    checkpoint: str = "the checkpoint",
    joint_runner: Optional[JointRunner] = None,
) -> Selection:
    """Temperatures (if ``fusion.temperature``), fusion weights, then (if
    ``postprocess.select_on_validation``) post-processing, then the fusion weights again under
    the chosen post-processing. Validation videos only. ``checkpoint`` names what the choice is
    for in the log line (e.g. ``best.pt``). With ``fusion.sampling = joint`` (and several
    streams) the weights are chosen by :func:`select_joint`, which samples the validation
    videos again through ``joint_runner`` for every candidate.

    Raises:
        ValueError: joint sampling without a ``joint_runner``.
    """
    if cfg.fusion.sampling is FusionSampling.JOINT and len(stream_names(cfg)) > 1:
        if joint_runner is None:
            raise ValueError("fusion.sampling = joint: selecting its weights needs the model")
        return select_joint(videos, label_names, cfg, epoch, checkpoint, joint_runner)
    temperatures = fit_temperatures(videos, cfg)
    method = FusionMethod.from_config(cfg.fusion, temperatures)
    post = PostprocessChoice.from_config(cfg)
    weights, value = select_fusion_weights(videos, label_names, cfg, post, method)
    if cfg.postprocess.select_on_validation:
        post, value = select_postprocess(videos, label_names, cfg, weights, method)
        weights, value = select_fusion_weights(videos, label_names, cfg, post, method)
    metrics = score_streams(videos, label_names, cfg, weights, post, method)
    return _selected(checkpoint, epoch, len(videos), cfg, weights, post, value, metrics,
                     temperatures)  # fmt: skip


def select_joint(
    videos: Sequence[VideoProbs],
    label_names: Sequence[str],
    cfg: Config,
    epoch: int,
    checkpoint: str,
    runner: JointRunner,
) -> Selection:
    """Fusion inside the sampler: every weight point of :func:`~twostream_das.prediction.fusion.
    simplex_grid` (``fusion.joint_grid_step``) sampled jointly on the validation videos
    (``runner``; a point with all the weight on one stream is that stream's own samples,
    ``videos``, unless temperatures apply), each scored with every post-processing candidate
    (``postprocess.select_on_validation``, else the configured one); the best pair wins. Ties:
    the configured post-processing, then the weights closest to equal, then grid order.
    Temperatures (``fusion.temperature``) are fitted on the streams' own samples first."""
    streams = stream_names(cfg)
    temperatures = fit_temperatures(videos, cfg)
    method = FusionMethod.from_config(cfg.fusion, temperatures)
    configured = PostprocessChoice.from_config(cfg)
    posts = [configured]
    if cfg.postprocess.select_on_validation:
        posts += [c for c in postprocess_candidates(cfg) if c != configured]
    gts, kind = [_labels(v) for v in videos], cfg.fusion.input
    best: Optional[tuple[tuple[float, float, int, int], dict[str, float], list[VideoProbs]]] = None
    for index, weights in enumerate(simplex_grid(cfg.fusion.joint_grid_step, streams)):
        alone = [s for s, w in weights.items() if w == 1.0]
        runs = (
            [v.with_joint(alone[0]) for v in videos]
            if alone and not temperatures
            else runner(weights, method)
        )
        for rank, post in enumerate(posts):
            preds = [video_fused_labels(v, weights, post, method, kind) for v in runs]
            value = selection_score(score_labels(gts, preds, label_names, cfg),
                                    cfg.train.select_metric)  # fmt: skip
            key = (-value, closest_to_equal(weights), rank, index)
            if best is None or key < best[0]:
                best = (key, weights, runs)
    assert best is not None
    (neg_value, _, rank, _), weights, runs = best
    post = posts[rank]
    chosen = FusionWeights.of(weights, streams)
    metrics = score_streams(runs, label_names, cfg, chosen, post, method)
    return _selected(checkpoint, epoch, len(videos), cfg, chosen, post, -neg_value, metrics,
                     temperatures)  # fmt: skip


def _selected(
    checkpoint: str,
    epoch: int,
    count: int,
    cfg: Config,
    weights: FusionWeights,
    post: PostprocessChoice,
    value: float,
    metrics: StreamMetrics,
    temperatures: Mapping[str, float],
) -> Selection:
    """The :class:`Selection`, logged."""
    logger.info(
        "selected for %s (epoch %d) on %d validation videos: fusion %s%s, %s window %d (%s %.2f)",
        checkpoint,
        epoch,
        count,
        format_weights(weights),
        " (joint sampling)" if cfg.fusion.sampling is FusionSampling.JOINT and len(weights) > 1
        else "",
        post.kind.value,
        post.window,
        cfg.train.select_metric,
        value,
    )
    return Selection(
        epoch, weights, post, cfg.train.select_metric, value, metrics, dict(temperatures)
    )


def _labels(video: VideoProbs) -> np.ndarray:
    if video.labels is None:
        raise ValueError(f"video {video.name} has no labels; selection needs labelled videos")
    return video.labels


def format_weights(weights: Mapping[str, float]) -> str:
    """``rgb=0.50 flow=0.50``: fusion weights for messages, in stream order."""
    return " ".join(f"{s}={w:.2f}" for s, w in weights.items())
