"""Weighted late fusion of the streams' probabilities and the search of its weights.

``P = w_rgb * P_rgb + w_flow * P_flow`` with each weight in [0, 1] (SPEC section 5), applied to
per-frame class probabilities before post-processing and argmax. The weights are not
renormalised: the paper's formula is used as written, and scaling both weights changes neither
the argmax nor a median filter.

Weights are chosen on validation videos by :func:`search_weights`, which tries every point of
:func:`weight_grid` with a caller-supplied score (e.g. the selection metric of the fused,
post-processed predictions), so the search knows nothing of metrics or data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from .config import STREAMS

GRID_DECIMALS = 10
"""Grid points are rounded to this many decimals (0.1 * 3 -> 0.3, not 0.30000000000000004)."""

ArrayT = TypeVar("ArrayT")  # numpy.ndarray or torch.Tensor, (C, T) or (B, C, T)


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Validated fusion weights: one per stream of ``STREAMS``, each in [0, 1], not all 0.

    Raises:
        ValueError: naming the offending stream and value.
    """
    if set(weights) != set(STREAMS):
        raise ValueError(f"fusion weights {dict(weights)} must have exactly the keys {STREAMS}")
    out = {s: float(weights[s]) for s in STREAMS}
    for stream, value in out.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"fusion weight of {stream} = {value} is invalid; expected in [0, 1]")
    if not any(out.values()):
        raise ValueError(f"fusion weights {out} are all 0; at least one must be > 0")
    return out


def fuse(probs: Mapping[str, ArrayT], weights: Mapping[str, float]) -> ArrayT:
    """``sum_s weights[s] * probs[s]`` over the streams.

    Args:
        probs: stream -> (C, T) or (B, C, T) probabilities (numpy arrays or tensors), all of
            one shape.
        weights: stream -> weight in [0, 1].

    Returns:
        The fused probabilities, same type and shape.
    """
    checked = check_weights(weights)
    shapes = {s: tuple(probs[s].shape) for s in STREAMS}  # type: ignore[attr-defined]
    if len(set(shapes.values())) != 1:
        raise ValueError(f"stream probabilities differ in shape: {shapes}")
    first, second = STREAMS
    return checked[first] * probs[first] + checked[second] * probs[second]  # type: ignore[operator]


def weight_grid(step: float) -> list[dict[str, float]]:
    """Every (w_rgb, w_flow) in {0, step, 2 step, ...} ∩ [0, 1], squared, except (0, 0).

    Order: w_rgb ascending, then w_flow ascending.
    """
    if not 0.0 < step <= 1.0:
        raise ValueError(f"fusion grid step = {step} is invalid; expected in (0, 1]")
    count = int(round(1.0 / step, GRID_DECIMALS) // 1)  # points beyond 0
    values = [round(i * step, GRID_DECIMALS) for i in range(count + 1)]
    first, second = STREAMS
    return [{first: a, second: b} for a in values for b in values if a > 0 or b > 0]


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
    step: float, score_fn: Callable[[Mapping[str, float]], Any]
) -> WeightSearch:
    """Grid search of the fusion weights.

    Args:
        step: grid step (``FusionConfig.grid_step``).
        score_fn: weights -> score to maximise (evaluated on validation videos only).

    Returns:
        :class:`WeightSearch`. Ties (equal scores, common since scaling both weights changes no
        argmax) go to the weights closest to equal (smallest ``|w_rgb - w_flow|``), then to the
        largest ``w_rgb + w_flow``, then to the earliest in grid order: deterministic.
    """
    table = [(w, float(score_fn(w))) for w in weight_grid(step)]
    first, second = STREAMS

    def rank(item: tuple[int, tuple[dict[str, float], float]]) -> tuple[float, float, float, int]:
        index, (w, value) = item
        return (-value, abs(w[first] - w[second]), -(w[first] + w[second]), index)

    _, (best, value) = min(enumerate(table), key=rank)
    return WeightSearch(dict(best), value, table)
