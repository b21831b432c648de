"""Temporal windows centred on every frame, built from a stream of frames with bounded memory.

The I3D feature of frame t is computed on frames t-h .. t+h (``window = 2h + 1``, 21 in the
recipe). Positions before frame 0 or after frame T-1 are **zeros in the normalised input space**:
mid-grey for RGB in [-1, 1], no motion for flow in [-1, 1]. Only ``window + batch_size`` frames
are held at a time, so memory does not grow with the video.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np


def window_indices(centre: int, window: int) -> range:
    """Frame indices of the window centred on ``centre`` (may fall outside [0, T))."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of frames, got {window}")
    half = window // 2
    return range(centre - half, centre + half + 1)


def build_window(frames: list[np.ndarray], centre: int, window: int) -> np.ndarray:
    """The window of ``centre`` from a list of all T frames (C, H, W): (C, window, H, W).

    The direct definition, for tests and small inputs; :func:`iter_window_batches` streams.
    """
    zero = np.zeros_like(frames[0])
    picked = [frames[i] if 0 <= i < len(frames) else zero for i in window_indices(centre, window)]
    return np.stack(picked, axis=1)


def iter_window_batches(
    frames: Iterable[np.ndarray], window: int, batch_size: int
) -> Iterator[np.ndarray]:
    """Windows centred on frames 0, 1, ..., T-1, in order, stacked in batches.

    Args:
        frames: T per-frame arrays (C, H, W), all the same shape.
        window: odd number of frames per window.
        batch_size: windows per yielded batch (the last batch may be smaller).

    Yields:
        (B, C, window, H, W) float32 arrays, B <= batch_size, covering all T centres once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    half = len(window_indices(0, window)) // 2
    buffer: deque[np.ndarray] = deque()  # frames first .. first + len(buffer) - 1
    first = 0  # index of buffer[0]
    centre = 0  # next window to build
    batch: list[np.ndarray] = []
    zero: np.ndarray | None = None

    def take(end: int) -> np.ndarray:  # window of `centre`; frames >= end are padding
        assert zero is not None
        picked = [
            buffer[i - first] if 0 <= i < end else zero for i in window_indices(centre, window)
        ]
        return np.stack(picked, axis=1)

    count = 0
    for frame in frames:
        if zero is None:
            zero = np.zeros_like(frame, dtype=np.float32)
        buffer.append(frame.astype(np.float32, copy=False))
        count += 1
        while centre + half < count:  # the window of `centre` is complete
            batch.append(take(count))
            centre += 1
            while first < centre - half:  # frames no later window needs
                buffer.popleft()
                first += 1
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
    while centre < count:  # the last `half` windows reach past the end
        batch.append(take(count))
        centre += 1
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)
