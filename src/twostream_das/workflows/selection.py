"""Choices made on validation videos only: the epoch, the fusion weights, the post-processing.

The validation videos are carved out of a fold's training videos (``dataset.val_fraction``,
``dataset.val_seed`` or ``splits/val.split<k>.bundle``); test videos never reach this module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np

from ..choices import FusionWeights, PostprocessChoice, Selection, StreamMetrics
from ..config import Config, PostprocessKind, stream_names
from ..fusion import FusionMethod, fit_temperature, search_weights
from ..inference import VideoProbs, decide_video, video_fused_labels
from ..metrics import METRIC_KEYS, score  # METRIC_KEYS: reported for every split, in percent

logger = logging.getLogger(__name__)


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
    ``"gt"``, over videos given as :meth:`~twostream_das.inference.VideoPrediction.label_rows`."""
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
) -> Selection:
    """Temperatures (if ``fusion.temperature``), fusion weights, then (if
    ``postprocess.select_on_validation``) post-processing, then the fusion weights again under
    the chosen post-processing. Validation videos only. ``checkpoint`` names what the choice is
    for in the log line (e.g. ``best.pt``)."""
    temperatures = fit_temperatures(videos, cfg)
    method = FusionMethod.from_config(cfg.fusion, temperatures)
    post = PostprocessChoice.from_config(cfg)
    weights, value = select_fusion_weights(videos, label_names, cfg, post, method)
    if cfg.postprocess.select_on_validation:
        post, value = select_postprocess(videos, label_names, cfg, weights, method)
        weights, value = select_fusion_weights(videos, label_names, cfg, post, method)
    metrics = score_streams(videos, label_names, cfg, weights, post, method)
    logger.info(
        "selected for %s (epoch %d) on %d validation videos: fusion %s, %s window %d (%s %.2f)",
        checkpoint,
        epoch,
        len(videos),
        format_weights(weights),
        post.kind.value,
        post.window,
        cfg.train.select_metric,
        value,
    )
    return Selection(
        epoch, weights, post, cfg.train.select_metric, value, metrics, temperatures
    )


def _labels(video: VideoProbs) -> np.ndarray:
    if video.labels is None:
        raise ValueError(f"video {video.name} has no labels; selection needs labelled videos")
    return video.labels


def format_weights(weights: Mapping[str, float]) -> str:
    """``rgb=0.50 flow=0.50``: fusion weights for messages, in stream order."""
    return " ".join(f"{s}={w:.2f}" for s, w in weights.items())
