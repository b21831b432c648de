"""Temporal sample rate (offset views, the average over them, the full rate restored) and soft
boundary targets.

With a sample rate ``r`` a video has ``r`` offset views: view ``o`` holds full-rate frames
``o, o + r, o + 2r, ...``. Training draws one view per sample; evaluation runs every view,
crops their outputs to the shortest view and averages them at the subsampled rate
(:func:`average_views`); after the decision at that rate, :func:`restore_full_rate` maps it
back to every full-rate frame (METHOD.md section 6, DiffAct's test loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

GAUSSIAN_TRUNCATE = 4.0  # kernel radius in sigmas (scipy's default)
BOUNDARY_MODE = "reflect"  # gaussian_filter1d at the video ends (scipy's default, as DiffAct)


def boundary_target(labels: np.ndarray, sigma: float, dtype: type = np.float32) -> np.ndarray:
    """Soft action-boundary target at the labels' own rate (METHOD.md section 3), as DiffAct's
    ``get_boundary_seq`` computes it.

    1 at both frames of every label change (``t - 1`` and ``t`` where ``labels[t] !=
    labels[t - 1]``), smoothed with a Gaussian of standard deviation ``sigma`` frames
    (``scipy.ndimage.gaussian_filter1d``, ``reflect`` at the video's ends, radius 4 sigma),
    capped at the peak one boundary pair reaches in the middle of a sequence of the same length,
    then divided by the maximum: an isolated boundary peaks at exactly 1, and so do close ones.
    A video with a single segment has no boundary: all zeros.

    Args:
        labels: (T,) integer class ids at the full frame rate.
        sigma: Gaussian standard deviation in frames of ``labels``; 0 = no smoothing.
        dtype: of the result (computed in float64).

    Returns:
        (T,) in [0, 1].
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D (T,), got shape {labels.shape}")
    target = np.zeros(labels.shape[0], dtype=np.float64)  # (T,)
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1  # first frames of new segments
    if change.size == 0:
        return target.astype(dtype)
    target[change] = 1.0
    target[change - 1] = 1.0
    if sigma <= 0:
        return target.astype(dtype)
    smooth = gaussian_filter1d(target, sigma, mode=BOUNDARY_MODE, truncate=GAUSSIAN_TRUNCATE)
    smooth = np.minimum(smooth, _pair_peak(labels.shape[0], sigma))
    return (smooth / smooth.max()).astype(dtype)


def _pair_peak(num_frames: int, sigma: float) -> float:
    """Peak of one smoothed boundary pair at frames ``T // 2 - 1, T // 2`` of a T-frame sequence
    (DiffAct's normaliser; the isolated-pair peak unless the video is only a few sigma long)."""
    pair = np.zeros(num_frames, dtype=np.float64)
    pair[num_frames // 2] = 1.0
    pair[num_frames // 2 - 1] = 1.0
    return float(
        gaussian_filter1d(pair, sigma, mode=BOUNDARY_MODE, truncate=GAUSSIAN_TRUNCATE).max()
    )


def view_boundary_target(target: np.ndarray, rate: int, offset: int) -> np.ndarray:
    """The boundary target of offset view ``offset``: the full-rate target (smoothed with sigma
    in full-rate frames) subsampled, then divided by its maximum again, as DiffAct's training
    reads it. All zeros stay zeros.

    Args:
        target: (T,) :func:`boundary_target` of the full-rate labels.

    Returns:
        (T_o,) same dtype.
    """
    view = np.array(subsample(target, rate, offset))  # (T_o,) copy
    peak = view.max() if view.size else 0
    return view / peak if peak > 0 else view


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
