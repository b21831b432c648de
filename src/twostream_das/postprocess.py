"""Post-processing of per-frame class probabilities into labels (SPEC section 5).

Three smoothers (:class:`~twostream_das.config.PostprocessKind`), each with a window of ``N``
frames:

- **purge** (:func:`purge`): segments shorter than ``N`` frames are removed, shortest first
  (the earliest of equally short ones), until none is left or one segment remains. A removed
  segment of length ``L`` with neighbours on both sides gives its first ``L // 2`` frames to the
  left neighbour and the other ``L - L // 2`` to the right one (DiffAct's split point); at either
  end of the video it goes wholly to its only neighbour. Neighbours that end up with the same
  label merge. Each step removes at least one segment, so it stops after at most S - 1 steps.
  DiffAct's research code instead makes one left-to-right pass over the original segments, purges
  segments of length ``<= N`` (so its "purge 3" is ``N = 4`` here) and hands frames to the
  neighbours' *original* labels, which can leave new short segments behind.
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

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from .config import PostprocessKind
from .metrics import segment_bounds

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


def postprocess(probs: ArrayLike, kind: PostprocessKind | str, window: int) -> np.ndarray:
    """Class probabilities to frame labels with one of the smoothers.

    Args:
        probs: (C, T) class probabilities (or any scores whose argmax is the label).
        kind: ``none``, ``purge``, ``median`` or ``mode``.
        window: N frames (ignored for ``none``).

    Returns:
        (T,) int64 class ids.
    """
    arr = _as_probs(probs)
    kind = PostprocessKind(kind)
    if kind is PostprocessKind.MEDIAN:
        return np.argmax(median_filter(arr, window), axis=0).astype(np.int64)
    labels = np.argmax(arr, axis=0).astype(np.int64)  # (T,)
    if kind is PostprocessKind.PURGE:
        return purge(labels, window)
    if kind is PostprocessKind.MODE:
        return mode_filter(labels, window)
    return labels
