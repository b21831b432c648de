"""Choices made on validation videos only: the epoch, the fusion weights, the post-processing.

The validation videos are carved out of a fold's training videos (``dataset.val_fraction``,
``dataset.val_seed`` or ``splits/val.split<k>.bundle``); test videos never reach this module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .config import STREAMS, Config, PostprocessKind
from .fusion import FusionMethod, fit_temperature, search_weights
from .inference import PostprocessChoice, VideoProbs, decide_video, video_fused_labels
from .metrics import METRIC_KEYS, score  # METRIC_KEYS: reported for every split, in percent

logger = logging.getLogger(__name__)

StreamMetrics = dict[str, dict[str, float]]
"""``{"rgb": M, "flow": M, "fused": M}`` with M a dict over
:data:`twostream_das.metrics.METRIC_KEYS`."""


def background_ids(label_names: Sequence[str], cfg: Config) -> list[int]:
    """Ids of ``dataset.background`` classes that exist in the label map (Edit/F1 drop them)."""
    return [i for i, name in enumerate(label_names) if name in set(cfg.dataset.background)]


def score_labels(
    gts: Sequence[np.ndarray], preds: Sequence[np.ndarray], label_names: Sequence[str], cfg: Config
) -> dict[str, float]:
    """Acc, Edit, F1@{10,25,50} (percent) of one split, aggregated as ``eval.average`` says."""
    result = score(list(gts), list(preds), background_ids(label_names, cfg), cfg.eval.average)
    return {k: float(result[k]) for k in METRIC_KEYS}


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
    """Metrics of RGB alone, FLOW alone and the fusion, all post-processed with ``post``."""
    decisions = [decide_video(v, weights, post, method) for v in videos]
    gts = [_labels(v) for v in videos]
    out = {
        s: score_labels(gts, [d.stream_labels[s] for d in decisions], label_names, cfg)
        for s in STREAMS
    }
    out["fused"] = score_labels(gts, [d.labels for d in decisions], label_names, cfg)
    return out


@dataclass(frozen=True)
class Selection:
    """What validation chose for one checkpoint."""

    epoch: int
    fusion_weights: dict[str, float]
    postprocess: PostprocessChoice
    metric: str  # train.select_metric
    score: float  # validation score of the fused prediction with these choices
    metrics: StreamMetrics = field(default_factory=dict)  # validation metrics with these choices
    temperatures: dict[str, float] = field(default_factory=dict)  # fusion.temperature; {} = off

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": int(self.epoch),
            "fusion_weights": {s: float(self.fusion_weights[s]) for s in STREAMS},
            "temperatures": {s: float(t) for s, t in self.temperatures.items()},
            "postprocess": self.postprocess.to_dict(),
            "metric": self.metric,
            "score": float(self.score),
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Selection:
        return cls(
            epoch=int(data["epoch"]),
            fusion_weights={s: float(data["fusion_weights"][s]) for s in STREAMS},
            postprocess=PostprocessChoice.from_dict(data["postprocess"]),
            metric=str(data["metric"]),
            score=float(data["score"]),
            metrics=dict(data.get("metrics", {})),
            temperatures={s: float(t) for s, t in (data.get("temperatures") or {}).items()},
        )


def fit_temperatures(videos: Sequence[VideoProbs], cfg: Config) -> dict[str, float]:
    """Per stream, the temperature fitted on these (validation) videos; {} when
    ``fusion.temperature`` is off."""
    if not cfg.fusion.temperature:
        return {}
    gts = [_labels(v) for v in videos]
    return {
        s: fit_temperature(
            [v.full_rate(v.probs[s]) for v in videos], gts, cfg.fusion.temperature_bounds,
            cfg.fusion.prob_floor,
        )
        for s in STREAMS
    }


def select_fusion_weights(
    videos: Sequence[VideoProbs],
    label_names: Sequence[str],
    cfg: Config,
    post: PostprocessChoice,
    method: Optional[FusionMethod] = None,
) -> tuple[dict[str, float], float]:
    """Grid search over (w_rgb, w_flow) in [0, 1]^2, step ``fusion.grid_step``, on validation."""
    gts = [_labels(v) for v in videos]

    def fused_score(weights: Mapping[str, float]) -> float:
        preds = [video_fused_labels(v, weights, post, method) for v in videos]
        return selection_score(score_labels(gts, preds, label_names, cfg), cfg.train.select_metric)

    found = search_weights(cfg.fusion.grid_step, fused_score)
    weights, best = _unpack_search(found)
    return weights, best


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
    gts = [_labels(v) for v in videos]
    configured = PostprocessChoice.from_config(cfg)
    candidates = [configured] + [c for c in postprocess_candidates(cfg) if c != configured]
    best_choice, best_score = configured, -np.inf
    for choice in candidates:
        preds = [video_fused_labels(v, weights, choice, method) for v in videos]
        value = selection_score(score_labels(gts, preds, label_names, cfg), cfg.train.select_metric)
        if value > best_score:
            best_choice, best_score = choice, value
    return best_choice, float(best_score)


def select(
    videos: Sequence[VideoProbs], label_names: Sequence[str], cfg: Config, epoch: int
) -> Selection:
    """Temperatures (if ``fusion.temperature``), fusion weights, then (if
    ``postprocess.select_on_validation``) post-processing, then the fusion weights again under
    the chosen post-processing. Validation videos only."""
    temperatures = fit_temperatures(videos, cfg)
    method = FusionMethod.from_config(cfg.fusion, temperatures)
    post = PostprocessChoice.from_config(cfg)
    weights, value = select_fusion_weights(videos, label_names, cfg, post, method)
    if cfg.postprocess.select_on_validation:
        post, value = select_postprocess(videos, label_names, cfg, weights, method)
        weights, value = select_fusion_weights(videos, label_names, cfg, post, method)
    metrics = score_streams(videos, label_names, cfg, weights, post, method)
    logger.info(
        "selected on %d validation videos: epoch %d, fusion rgb=%.2f flow=%.2f, %s window %d "
        "(%s %.2f)",
        len(videos),
        epoch,
        weights["rgb"],
        weights["flow"],
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


def _unpack_search(found: Any) -> tuple[dict[str, float], float]:
    """Accept ``search_weights``'s result: ``(weights, score)`` or an object with those fields."""
    if isinstance(found, tuple):
        weights, value = found[0], found[1]
    else:
        weights, value = found.weights, found.score
    return {s: float(weights[s]) for s in STREAMS}, float(value)
