"""Post-processing of per-frame class probabilities into labels (METHOD.md sections 5 and 6).

:func:`postprocess` is the one path from class probabilities to full-rate labels. With a
temporal sample rate ``r`` (METHOD.md section 6, DiffAct's test loop) its input is the average of
the offset views at the subsampled rate: the median filter runs there (its window counts
subsampled frames: 50Salads' 30 at r = 8 spans 240 full-rate frames, 8 s), then the argmax,
then the full rate is restored by nearest neighbour
(:func:`~twostream_das.data.temporal.restore_full_rate`, left offset ``r // 2``), and mode
filter or purge run on the full-rate labels (their windows count full-rate frames).

The smoothers (:class:`~twostream_das.config.PostprocessKind`), each with a window of ``N``
frames:

- **purge** (:func:`purge`): segments shorter than ``N`` frames are removed, shortest first
  (the earliest of equally short ones), until none is left or one segment remains. A removed
  segment of length ``L`` with neighbours on both sides gives its first ``L // 2`` frames to the
  left neighbour and the other ``L - L // 2`` to the right one (DiffAct's split point); at either
  end of the video it goes wholly to its only neighbour. Neighbours that end up with the same
  label merge. Each step removes at least one segment, so it stops after at most S - 1 steps.
- **diffact_purge** (:func:`diffact_purge`): DiffAct's own rule, so its results can be
  reproduced: one left-to-right pass over the original segments; a segment of *at most* ``N``
  frames gives its first ``L // 2`` frames to the left neighbour's and the rest to the right
  neighbour's *original* label (wholly to the only neighbour at the ends), which can leave new
  short segments behind. As in DiffAct's segment helper, the last segment's length is counted one
  frame short and a purged last segment keeps its very last frame.
- **median** (:func:`median_filter`): a running median of every class probability along time,
  window ``N`` centred on the frame (``scipy.ndimage.median_filter``, ``origin=0``; an even window
  reaches ``N // 2`` frames back and ``N // 2 - 1`` forward), ``reflect`` at the video ends as in
  DiffAct, then renormalised per frame. The labels are its argmax.
- **mode** (:func:`mode_filter`): the most frequent label in a window of ``N`` frames with the
  same centring and ``reflect`` ends. Ties go to the smallest label (id or name), as
  ``scipy.stats.mode`` breaks them in the research code's ``generic_filter``. Vectorised with
  per-class cumulative counts, so it runs on any numpy/scipy (the research code's
  ``stats.mode(...)[0]`` fails on scipy >= 1.11).

Argmax ties (equal probabilities) go to the lowest class id, as ``numpy.argmax`` does.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from ..config import PostprocessKind
from ..data.temporal import restore_full_rate
from ..metrics import segment_bounds

logger = logging.getLogger(__name__)

BOUNDARY_MODE = "reflect"  # scipy.ndimage name; numpy.pad calls the same rule "symmetric"


def _check_window(window: int) -> int:
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise ValueError(f"post-processing window {window!r} is invalid; expected an integer >= 1")
    return int(window)


def _as_labels(labels: ArrayLike) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels have shape {arr.shape}; expected (T,)")
    return arr


def _as_probs(probs: ArrayLike) -> np.ndarray:
    arr = np.asarray(probs)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"probabilities have shape {arr.shape}; expected (C, T) with C >= 1")
    return arr


# --------------------------------------------------------------------------- purge


def purge(labels: ArrayLike, min_len: int) -> np.ndarray:
    """Remove segments shorter than ``min_len`` frames (rule in the module docstring).

    Args:
        labels: (T,) frame labels (ids or names).
        min_len: shortest segment kept, in frames; 1 keeps everything.

    Returns:
        (T,) labels of the same dtype.
    """
    arr = _as_labels(labels)
    min_len = _check_window(min_len)
    seg_labels, starts, ends = segment_bounds(arr)
    if min_len == 1 or len(seg_labels) < 2:
        return arr.copy()
    seg_labels, lengths = _purge_segments(list(seg_labels), (ends - starts).tolist(), min_len)
    out = np.repeat(np.asarray(seg_labels, dtype=arr.dtype), lengths)
    assert out.shape == arr.shape, "purge must keep the number of frames"
    return out


def _purge_segments(
    seg_labels: list, lengths: list[int], min_len: int
) -> tuple[list, list[int]]:
    """The purge loop on run-length form ``(labels (S,), lengths (S,))``, in O(S log S).

    Segments form a doubly linked list; a heap holds ``(length, index)`` entries (index order is
    time order, so ties go to the earliest), and entries whose length has changed are skipped.
    """
    size = list(lengths)
    prev = [i - 1 for i in range(len(size))]  # -1: none
    nxt = [i + 1 if i + 1 < len(size) else -1 for i in range(len(size))]
    alive = [True] * len(size)
    heap = [(n, i) for i, n in enumerate(size)]
    heapq.heapify(heap)
    remaining = len(size)

    def unlink(i: int) -> None:
        alive[i] = False
        if prev[i] >= 0:
            nxt[prev[i]] = nxt[i]
        if nxt[i] >= 0:
            prev[nxt[i]] = prev[i]

    while remaining > 1 and heap:
        n, i = heapq.heappop(heap)
        if not alive[i] or n != size[i]:
            continue  # stale entry
        if n >= min_len:
            break
        left, right = prev[i], nxt[i]
        if left < 0:
            size[right] += n
        elif right < 0:
            size[left] += n
        else:
            size[left] += n // 2
            size[right] += n - n // 2
        unlink(i)
        remaining -= 1
        if left >= 0 and right >= 0 and seg_labels[left] == seg_labels[right]:
            size[left] += size[right]  # the neighbours now touch and agree: merge
            unlink(right)
            remaining -= 1
            right = -1
        for j in (left, right):
            if j >= 0:
                heapq.heappush(heap, (size[j], j))
    keep = [i for i in range(len(size)) if alive[i]]
    return [seg_labels[i] for i in keep], [size[i] for i in keep]


def diffact_purge(labels: ArrayLike, max_len: int) -> np.ndarray:
    """DiffAct's purge: segments of at most ``max_len`` frames, one pass (module docstring).

    Args:
        labels: (T,) frame labels (ids or names).
        max_len: longest segment removed, in frames.

    Returns:
        (T,) labels of the same dtype. A video of one segment is returned unchanged.
    """
    arr = _as_labels(labels)
    max_len = _check_window(max_len)
    seg_labels, starts, ends = segment_bounds(arr)
    out = arr.copy()
    last = len(seg_labels) - 1
    if last < 1:
        return out
    ends = ends.copy()
    ends[last] -= 1  # DiffAct's segment helper ends the last segment at T - 1
    for e in range(last + 1):
        start, end = int(starts[e]), int(ends[e])
        length = end - start
        if length > max_len:
            continue
        if e == 0:
            out[start:end] = seg_labels[1]
        elif e == last:
            out[start:end] = seg_labels[e - 1]
        else:
            mid = start + length // 2
            out[start:mid] = seg_labels[e - 1]
            out[mid:end] = seg_labels[e + 1]
    return out


# --------------------------------------------------------------------------- median


def median_filter(probs: ArrayLike, window: int) -> np.ndarray:
    """Running median of each class probability along time, renormalised per frame.

    Args:
        probs: (C, T) class probabilities.
        window: N frames, centred (module docstring).

    Returns:
        (C, T) float, every frame summing to 1 (frames whose medians are all 0 stay 0).
    """
    arr = _as_probs(probs)
    window = _check_window(window)
    smooth = ndimage.median_filter(arr, size=(1, window), mode=BOUNDARY_MODE)  # (C, T)
    total = smooth.sum(axis=0, keepdims=True)  # (1, T)
    return smooth / np.where(total > 0, total, 1)


# --------------------------------------------------------------------------- mode


def mode_filter(labels: ArrayLike, window: int) -> np.ndarray:
    """Most frequent label in a centred window of ``window`` frames (smallest label on ties).

    Args:
        labels: (T,) frame labels (ids or names).
        window: N frames.

    Returns:
        (T,) labels of the same dtype.
    """
    arr = _as_labels(labels)
    window = _check_window(window)
    if window == 1 or arr.size == 0:
        return arr.copy()
    classes, codes = np.unique(arr, return_inverse=True)  # sorted, so argmax ties -> smallest
    before, after = window // 2, window - 1 - window // 2  # scipy's centring for origin=0
    padded = np.pad(codes.reshape(-1), (before, after), mode="symmetric")  # (T + N - 1,)
    onehot = padded[None, :] == np.arange(len(classes))[:, None]  # (K, T + N - 1)
    cum = np.zeros((len(classes), padded.size + 1), dtype=np.int64)
    np.cumsum(onehot, axis=1, out=cum[:, 1:])
    counts = cum[:, window:] - cum[:, :-window]  # (K, T): votes of each class per window
    return classes[np.argmax(counts, axis=0)]


# --------------------------------------------------------------------------- entry point


PROBABILITY_FILTERS: dict[PostprocessKind, Callable[[np.ndarray, int], np.ndarray]] = {
    PostprocessKind.MEDIAN: median_filter,
}
"""Filters of the class probabilities (C, T_s), at the subsampled rate, before the argmax."""

LABEL_FILTERS: dict[PostprocessKind, Callable[[np.ndarray, int], np.ndarray]] = {
    PostprocessKind.PURGE: purge,
    PostprocessKind.DIFFACT_PURGE: diffact_purge,
    PostprocessKind.MODE: mode_filter,
}
"""Filters of the labels (T,), at the full rate, after it is restored. Every
:class:`~twostream_das.config.PostprocessKind` but ``none`` is in exactly one of the two tables
(docs/ARCHITECTURE.md, "How to add a post-processing filter")."""


def postprocess(
    probs: ArrayLike,
    kind: PostprocessKind | str,
    window: int,
    sample_rate: int = 1,
    num_frames: int | None = None,
) -> np.ndarray:
    """Class probabilities to full-rate frame labels (the path in the module docstring).

    Args:
        probs: (C, T_s) class probabilities (or any scores whose argmax is the label); with
            ``sample_rate`` r > 1 the offset views' average at the subsampled rate.
        kind: ``none``, ``purge``, ``diffact_purge``, ``median`` or ``mode``.
        window: N frames (ignored for ``none``): subsampled frames for ``median``, full-rate
            frames for the others.
        sample_rate: r.
        num_frames: T, the full-rate length; None = T_s (only with r == 1).

    Returns:
        (T,) int64 class ids.
    """
    arr = _as_probs(probs)
    kind = PostprocessKind(kind)
    num_frames = arr.shape[1] if num_frames is None else int(num_frames)
    if sample_rate == 1 and num_frames != arr.shape[1]:
        raise ValueError(
            f"probabilities have {arr.shape[1]} frames but the video has {num_frames}; at sample "
            "rate 1 they must agree"
        )
    if kind in PROBABILITY_FILTERS:
        arr = PROBABILITY_FILTERS[kind](arr, window)  # (C, T_s)
    labels = np.argmax(arr, axis=0).astype(np.int64)  # (T_s,)
    labels = restore_full_rate(labels, sample_rate, num_frames)  # (T,)
    if kind in LABEL_FILTERS:
        return LABEL_FILTERS[kind](labels, window)  # (T,)
    return labels
