"""Temporal sample rate (offset views, the average over them, the full rate restored) and soft
boundary targets.

With a sample rate ``r`` a video has ``r`` offset views: view ``o`` holds full-rate frames
``o, o + r, o + 2r, ...``. Training draws one view per sample; evaluation runs every view,
crops their outputs to the shortest view and averages them at the subsampled rate
(:func:`average_views`); after the decision at that rate, :func:`restore_full_rate` maps it
back to every full-rate frame (SPEC section 6, DiffAct's test loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

GAUSSIAN_TRUNCATE = 4.0  # kernel radius in sigmas (scipy's default)


def boundary_target(labels: np.ndarray, sigma: float) -> np.ndarray:
    """Soft action-boundary target (SPEC section 3).

    1 at both frames of every label change (``t - 1`` and ``t`` where ``labels[t] !=
    labels[t - 1]``), smoothed with a Gaussian of standard deviation ``sigma`` frames (zero
    outside the video), then divided by the peak an isolated boundary reaches, and capped at 1:
    every boundary peaks at exactly 1 even when two are close. A video with a single segment
    has no boundary: all zeros.

    Args:
        labels: (T,) integer class ids.
        sigma: Gaussian standard deviation in frames of ``labels``; 0 = no smoothing.

    Returns:
        (T,) float32 in [0, 1].
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (T,), got shape {labels.shape}")
    target = np.zeros(labels.shape[0], dtype=np.float64)  # (T,)
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1  # first frames of new segments
    if change.size == 0:
        return target.astype(np.float32)
    target[change] = 1.0
    target[change - 1] = 1.0
    if sigma <= 0:
        return target.astype(np.float32)
    smooth = gaussian_filter1d(target, sigma, mode="constant", truncate=GAUSSIAN_TRUNCATE)
    peak = _isolated_boundary_peak(sigma)
    return np.minimum(smooth / peak, 1.0).astype(np.float32)


def _isolated_boundary_peak(sigma: float) -> float:
    """Peak of one smoothed boundary pair [.., 0, 1, 1, 0, ..] far from other boundaries."""
    radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
    pair = np.zeros(2 * radius + 4, dtype=np.float64)
    pair[radius + 1 : radius + 3] = 1.0
    return float(gaussian_filter1d(pair, sigma, mode="constant", truncate=GAUSSIAN_TRUNCATE).max())


def num_view_frames(num_frames: int, rate: int, offset: int) -> int:
    """Frames in offset view ``offset`` of a ``num_frames`` video: len(range(offset, T, rate))."""
    _check_rate_offset(rate, offset)
    return len(range(offset, num_frames, rate))


def subsample(x: ArrayT, rate: int, offset: int) -> ArrayT:
    """Offset view of ``x`` along its last axis: frames ``offset, offset + rate, ...``.

    Args:
        x: (..., T) numpy array or tensor.

    Returns:
        (..., ceil((T - offset) / rate)), a view (no copy).
    """
    _check_rate_offset(rate, offset)
    return x[..., offset::rate]


def average_views(views: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of the offset views' values, each cropped to the shortest view.

    View ``o``'s frame ``j`` sits at full-rate frame ``o + j * r``, so after the crop frame ``j``
    of every view covers full-rate frames ``j * r .. j * r + r - 1``.

    Args:
        views: r arrays (..., T_o), one per offset, of one dtype (the result keeps it).

    Returns:
        (..., min_o T_o).
    """
    if not views:
        raise ValueError("no offset views to average; expected at least one")
    length = min(v.shape[-1] for v in views)
    total = views[0][..., :length].copy()
    for view in views[1:]:
        total += view[..., :length]
    return total / len(views)


def restore_left_offset(rate: int) -> int:
    """Full-rate frame of the restored sequence's first tick: ``r // 2`` (DiffAct's left
    offset; its right offset ``(r - 1) // 2`` follows from the cropped length)."""
    _check_rate_offset(rate, 0)
    return rate // 2


def restore_full_rate(x: ArrayT, rate: int, num_frames: int) -> ArrayT:
    """Values at the subsampled rate (after :func:`average_views`) back at every full-rate frame.

    Frame ``j`` of ``x`` is placed at full-rate frame ``r // 2 + j * r`` (its window's middle);
    every full-rate frame takes the value of the nearest placed frame (ties to the earlier one,
    as ``scipy.interpolate.interp1d(kind="nearest")``), and the frames before the first or after
    the last take that end's value. This is DiffAct's ``restore_full_sequence`` with left offset
    ``r // 2`` and right offset ``(r - 1) // 2``: for ``T >= r`` the cropped length
    ``floor(T / r)`` is exactly its number of ticks.

    Args:
        x: (..., T_s) values (labels or probabilities), T_s >= 1.
        rate: r.
        num_frames: T, the full-rate length.

    Returns:
        (..., T), same type and dtype (``x`` itself when r == 1 and T_s == T).
    """
    length = x.shape[-1]
    if length < 1:
        raise ValueError("nothing to restore: the subsampled sequence has no frames")
    if rate == 1 and length == num_frames:
        return x
    t = np.arange(num_frames, dtype=np.int64)  # (T,)
    index = (t - restore_left_offset(rate) + (rate - 1) // 2) // rate  # nearest, ties down
    index = np.clip(index, 0, length - 1)
    if isinstance(x, torch.Tensor):
        return x[..., torch.from_numpy(index).to(x.device)]
    return x[..., index]


def _check_rate_offset(rate: int, offset: int) -> None:
    if rate < 1:
        raise ValueError(f"sample rate must be >= 1, got {rate}")
    if not 0 <= offset < rate:
        raise ValueError(f"offset must be in [0, {rate - 1}] for sample rate {rate}, got {offset}")
