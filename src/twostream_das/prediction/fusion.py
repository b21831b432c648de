"""Weighted late fusion of the streams' probabilities and the search of its weights.

``P = sum_s w_s * P_s`` over the configured streams, each weight in [0, 1] (METHOD.md section 5:
``w_rgb * P_rgb + w_flow * P_flow`` for the two streams of the presets), applied to per-frame
class probabilities before post-processing and argmax. The weights are not renormalised: the
paper's formula is used as written, and scaling all weights changes neither the argmax nor a
median filter. With one stream the weight is 1 and there is nothing to search.

Two settings change what is combined, not the weights or their search (``docs/FUSION.md`` has
the measurements that chose the defaults):

- ``fusion.rule = product``: ``P ∝ prod_s P_s ** w_s``, the weighted sum of log-probabilities,
  renormalised over the classes. A stream that is sure a class is wrong vetoes it, where the
  sum lets the more confident stream decide.
- ``fusion.temperature``: each stream's probabilities are first tempered, ``P_s ** (1 / T_s)``
  renormalised, with ``T_s`` fitted on validation frames (:func:`fit_temperature`, the
  negative log-likelihood of the true labels).

Weights are chosen on validation videos by :func:`search_weights`, which tries every point of
:func:`weight_grid` with a caller-supplied score (e.g. the selection metric of the fused,
post-processed predictions), so the search knows nothing of metrics or data.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, TypeVar

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ..choices import FusionWeights
from ..config import FusionConfig, FusionRule

GRID_DECIMALS = 10
"""Grid points are rounded to this many decimals (0.1 * 3 -> 0.3, not 0.30000000000000004)."""

ArrayT = TypeVar("ArrayT")  # numpy.ndarray or torch.Tensor, (C, T) or (B, C, T)


@dataclass(frozen=True)
class FusionMethod:
    """How the streams' probabilities are combined, besides the weights.

    Attributes:
        rule: sum of probabilities (the paper) or of log-probabilities (product).
        temperatures: stream -> T_s > 0 applied before fusing; empty = none (all 1).
        floor: probabilities are clipped to this before a log.
    """

    rule: FusionRule = FusionRule.SUM
    temperatures: Mapping[str, float] = field(default_factory=dict)
    floor: float = 1e-8

    @classmethod
    def from_config(
        cls, cfg: FusionConfig, temperatures: Optional[Mapping[str, float]] = None
    ) -> FusionMethod:
        return cls(cfg.rule, dict(temperatures or {}), cfg.prob_floor)


def _log(x: ArrayT, floor: float) -> ArrayT:
    if isinstance(x, torch.Tensor):
        return torch.log(x.clamp_min(floor))  # type: ignore[return-value]
    return np.log(np.maximum(x, floor))  # type: ignore[return-value,call-overload]


def _softmax_classes(logits: ArrayT) -> ArrayT:
    """Softmax over the class axis (-2 of (C, T) or (B, C, T))."""
    if isinstance(logits, torch.Tensor):
        return torch.softmax(logits, dim=-2)  # type: ignore[return-value]
    shifted = np.exp(logits - np.max(logits, axis=-2, keepdims=True))  # type: ignore[call-overload]
    return shifted / shifted.sum(axis=-2, keepdims=True)  # type: ignore[no-any-return]


def temper(probs: ArrayT, temperature: float, floor: float = 1e-8) -> ArrayT:
    """``probs ** (1 / T)`` renormalised over the classes (axis -2); T = 1 returns ``probs``."""
    if temperature <= 0:
        raise ValueError(f"temperature = {temperature} is invalid; expected > 0")
    if temperature == 1.0:
        return probs
    return _softmax_classes(_log(probs, floor) / temperature)  # type: ignore[operator]


def fuse(
    probs: Mapping[str, ArrayT],
    weights: Mapping[str, float],
    method: Optional[FusionMethod] = None,
) -> ArrayT:
    """The streams' probabilities combined with ``weights`` as ``method`` says.

    ``sum`` (default): ``sum_s weights[s] * probs[s]``. ``product``: softmax over the classes
    of ``sum_s weights[s] * log(probs[s])`` (probabilities clipped to ``method.floor``).
    Temperatures, if any, are applied to each stream first (:func:`temper`).

    Args:
        probs: stream -> (C, T) or (B, C, T) probabilities (numpy arrays or tensors), all of
            one shape.
        weights: stream -> weight in [0, 1], naming exactly the streams of ``probs``.
        method: rule, temperatures and floor; None = the paper's weighted sum.

    Returns:
        The fused scores, same type and shape (probabilities for ``product``; for ``sum``
        they sum to ``sum_s weights[s]``).
    """
    method = method or FusionMethod()
    checked = FusionWeights.of(weights, list(probs))
    shapes = {s: tuple(p.shape) for s, p in probs.items()}  # type: ignore[attr-defined]
    if len(set(shapes.values())) != 1:
        raise ValueError(f"stream probabilities differ in shape: {shapes}")
    tempered = {
        s: temper(p, float(method.temperatures.get(s, 1.0)), method.floor)
        for s, p in probs.items()
    }
    if method.rule is FusionRule.PRODUCT:
        terms = [checked[s] * _log(p, method.floor) for s, p in tempered.items()]  # type: ignore[operator]
        return _softmax_classes(_total(terms))
    return _total([checked[s] * p for s, p in tempered.items()])  # type: ignore[operator]


def fuse_normalized(
    probs: Mapping[str, ArrayT],
    weights: Mapping[str, float],
    method: Optional[FusionMethod] = None,
) -> ArrayT:
    """:func:`fuse` rescaled to probabilities: the weighted sum divided by the weights' sum
    (the product is normalised already). Same argmax as :func:`fuse`."""
    method = method or FusionMethod()
    fused = fuse(probs, weights, method)
    if method.rule is FusionRule.PRODUCT:
        return fused
    return fused / float(sum(weights[s] for s in probs))  # type: ignore[operator]


@dataclass(frozen=True)
class JointFusion:
    """Fusion inside the sampler (``fusion.sampling = joint``): a
    :class:`~twostream_das.diffusion.sampling.Consensus` over rows that hold the streams of the
    same videos, stream-major (``(G * N, C, T)``, G = ``len(streams)``). At every DDIM step the
    streams' x0 probabilities of a video are fused (:func:`fuse_normalized`, ``weights`` and
    ``method``) and every stream continues from that one estimate, each from its own x_t with
    its own noise. The networks stay separate; only sampling is joint.

    Attributes:
        streams: the row blocks' stream names, in order.
        weights: stream -> weight (not all 0).
        method: rule, temperatures and floor.
    """

    streams: tuple[str, ...]
    weights: Mapping[str, float]
    method: FusionMethod = field(default_factory=FusionMethod)

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        """(G * N, C, T) probabilities -> (G * N, C, T): each video's fused x0 probabilities,
        repeated for each stream's rows."""
        count = len(self.streams)
        per_stream = probs.reshape(count, -1, *probs.shape[1:])  # (G, N, C, T)
        fused = fuse_normalized(
            {s: per_stream[i] for i, s in enumerate(self.streams)}, self.weights, self.method
        )  # (N, C, T)
        return fused.to(probs.dtype).repeat(count, 1, 1)  # (G * N, C, T)


def _total(terms: list[ArrayT]) -> ArrayT:
    """The sum of one term per stream (arrays or tensors)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term  # type: ignore[operator]
    return total


def fit_temperature(
    probs: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    bounds: Sequence[float] = (0.05, 20.0),
    floor: float = 1e-8,
) -> float:
    """The temperature T in ``bounds`` that minimises the mean negative log-likelihood of the
    true labels under ``probs ** (1 / T)`` renormalised (validation frames only).

    Args:
        probs: per video (C, T_v) probabilities of one stream.
        labels: per video (T_v,) int class ids.

    Returns:
        T (> 1 softens over-confident probabilities, < 1 sharpens).
    """
    logp = np.concatenate([np.log(np.maximum(p, floor)) for p in probs], axis=1)  # (C, N)
    truth = np.concatenate([np.asarray(y, dtype=np.int64) for y in labels])  # (N,)
    if logp.shape[1] != truth.shape[0] or truth.size == 0:
        raise ValueError(f"{logp.shape[1]} frames of probabilities for {truth.shape[0]} labels")
    picked = logp[truth, np.arange(truth.size)]  # (N,)

    def nll(log_t: float) -> float:
        scaled = logp / np.exp(log_t)  # (C, N)
        top = scaled.max(axis=0)
        norm = top + np.log(np.exp(scaled - top).sum(axis=0))  # (N,)
        return float(np.mean(norm - picked / np.exp(log_t)))

    low, high = (float(b) for b in bounds)
    found = minimize_scalar(nll, bounds=(np.log(low), np.log(high)), method="bounded",
                            options={"xatol": 1e-4})
    return float(np.exp(found.x))


def weight_grid(step: float, streams: Sequence[str]) -> list[dict[str, float]]:
    """Every point of {0, step, 2 step, ...} ∩ [0, 1] per stream, except all zeros; one stream
    gets the single point ``{stream: 1}``.

    Order: the first stream's weight ascending, then the second's, ... (``itertools.product``).
    """
    if not 0.0 < step <= 1.0:
        raise ValueError(f"fusion grid step = {step} is invalid; expected in (0, 1]")
    if not streams:
        raise ValueError("fusion weight grid needs at least one stream")
    if len(streams) == 1:
        return [{streams[0]: 1.0}]
    count = int(round(1.0 / step, GRID_DECIMALS) // 1)  # points beyond 0
    values = [round(i * step, GRID_DECIMALS) for i in range(count + 1)]
    return [
        dict(zip(streams, point, strict=True))
        for point in itertools.product(values, repeat=len(streams))
        if any(point)
    ]


def simplex_grid(step: float, streams: Sequence[str]) -> list[dict[str, float]]:
    """Every point of {0, step, 2 step, ..., 1} per stream whose weights sum to 1 (the
    candidates of ``fusion.sampling = joint``, where the scale of the weights matters for the
    product rule and is fixed to 1), in :func:`weight_grid` order; one stream: ``{stream: 1}``.
    ``simplex_grid(0.5, ["a", "b"]) == [{"a": 0.0, "b": 1.0}, {"a": 0.5, "b": 0.5},
    {"a": 1.0, "b": 0.0}]``.
    """
    return [w for w in weight_grid(step, streams) if round(sum(w.values()), GRID_DECIMALS) == 1.0]


def closest_to_equal(weights: Mapping[str, float]) -> float:
    """``max - min`` of the weights: how far from equal (ties go to the smallest)."""
    return round(max(weights.values()) - min(weights.values()), GRID_DECIMALS)


class WeightSearch(NamedTuple):
    """Attributes:
    weights: the chosen stream -> weight.
    score: its score.
    table: every grid point with its score, in grid order.
    """

    weights: dict[str, float]
    score: float
    table: list[tuple[dict[str, float], float]]


def search_weights(
    step: float, streams: Sequence[str], score_fn: Callable[[Mapping[str, float]], Any]
) -> WeightSearch:
    """Grid search of the fusion weights, one per stream.

    Args:
        step: grid step (``FusionConfig.grid_step``).
        streams: the stream names, in order.
        score_fn: weights -> score to maximise (evaluated on validation videos only).

    Returns:
        :class:`WeightSearch`. Ties (equal scores, common since scaling all weights changes no
        argmax) go to the weights closest to equal (smallest ``max - min``; ``|w_rgb - w_flow|``
        for two streams), then to the largest sum, then to the earliest in grid order:
        deterministic.
    """
    table = [(w, float(score_fn(w))) for w in weight_grid(step, streams)]

    def rank(item: tuple[int, tuple[dict[str, float], float]]) -> tuple[float, float, float, int]:
        index, (w, value) = item
        return (-value, closest_to_equal(w), -round(sum(w.values()), GRID_DECIMALS), index)

    _, (best, value) = min(enumerate(table), key=rank)
    return WeightSearch(dict(best), value, table)
