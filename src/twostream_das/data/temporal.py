"""Temporal sample rate (offset views, upsampling back) and soft boundary targets.

With a sample rate ``r`` a video has ``r`` offset views: view ``o`` holds full-rate frames
``o, o + r, o + 2r, ...``. Training draws one view per sample; evaluation runs every view,
upsamples each back to full rate with :func:`upsample` and averages.
"""

from __future__ import annotations

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


def upsample(x: np.ndarray, rate: int, offset: int, num_frames: int) -> np.ndarray:
    """Map an offset view's values back to full frame rate.

    Each full-rate frame ``t`` takes the value of the nearest frame of the view (view frame
    ``j`` sits at ``offset + j * rate``; ties go to the earlier one; frames before the first or
    after the last view frame take that end frame).

    Args:
        x: (C, T_s) values of view ``offset``, ``T_s == num_view_frames(num_frames, rate, offset)``.
        num_frames: T, the full-rate length.

    Returns:
        (C, num_frames), same dtype as ``x``.
    """
    expected = num_view_frames(num_frames, rate, offset)
    if x.shape[-1] != expected:
        raise ValueError(
            f"view {offset} of a {num_frames}-frame video at rate {rate} has {expected} frames, "
            f"got {x.shape[-1]}"
        )
    if rate == 1:
        return x
    return x[..., nearest_view_index(num_frames, rate, offset)]


def nearest_view_index(num_frames: int, rate: int, offset: int) -> np.ndarray:
    """For every full-rate frame, the index of its nearest frame in view ``offset``.

    Returns:
        (num_frames,) int64 in [0, T_s - 1].
    """
    last = num_view_frames(num_frames, rate, offset) - 1
    if last < 0:
        raise ValueError(f"view {offset} of a {num_frames}-frame video at rate {rate} is empty")
    t = np.arange(num_frames, dtype=np.int64)  # (T,)
    index = (t - offset + (rate - 1) // 2) // rate  # round((t - offset) / rate), ties down
    return np.clip(index, 0, last)


def _check_rate_offset(rate: int, offset: int) -> None:
    if rate < 1:
        raise ValueError(f"sample rate must be >= 1, got {rate}")
    if not 0 <= offset < rate:
        raise ValueError(f"offset must be in [0, {rate - 1}] for sample rate {rate}, got {offset}")
