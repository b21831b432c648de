"""Dense optical flow for the I3D FLOW tower: TV-L1 (the reference) or Farneback (fast).

Recipe (the one the I3D FLOW weights were trained with, Carreira & Zisserman 2017):
grey frames -> TV-L1 flow (dx, dy) in pixels of the resized frame -> clipped to
[-bound, bound] with bound = 20 -> divided by 20, so the network sees [-1, 1].

Frame alignment: the flow of frame t is computed from frame t to frame t+1. The last frame has no
successor; it repeats the flow of frame T-2 (a one-frame video gets zero flow). So a video of T
frames gives exactly T flow fields, one per frame, like the RGB stream.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ._deps import require_cv2, require_cv2_contrib

logger = logging.getLogger(__name__)

FLOW_BOUND = 20.0
"""Flow is clipped to +-FLOW_BOUND pixels and divided by it (the I3D recipe)."""

# Farneback parameters: OpenCV's documented example values (pyramid scale, levels, window,
# iterations, poly_n, poly_sigma). They are a speed/quality compromise, not tuned for I3D.
FARNEBACK_PARAMS: dict[str, float] = {
    "pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2,
}


class FlowMethod(str, enum.Enum):
    TVL1 = "tvl1"  # cv2.optflow.DualTVL1OpticalFlow with OpenCV's defaults: the reference
    FARNEBACK = "farneback"  # cv2.calcOpticalFlowFarneback: ~10-50x faster, a deviation


FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def make_flow_fn(method: FlowMethod | str) -> FlowFn:
    """A function (prev, next) grey (H, W) uint8 -> flow (H, W, 2) float32, channels (dx, dy).

    TV-L1 uses OpenCV's defaults (tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps,
    epsilon 0.01, 300 inner iterations), as the common ``denseflow`` extraction tools do.
    """
    method = FlowMethod(method)
    if method is FlowMethod.TVL1:
        cv2 = require_cv2_contrib()
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()

        def tvl1_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
            return tvl1.calc(prev, nxt, None)

        return tvl1_flow
    cv2 = require_cv2()

    def farneback_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, flags=0, **FARNEBACK_PARAMS)

    return farneback_flow


def clip_and_scale(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Clip flow (pixels) to [-bound, bound] and divide by ``bound``: values in [-1, 1]."""
    return (np.clip(flow, -bound, bound) / bound).astype(np.float32, copy=False)


def iter_flow(gray_frames: Iterable[np.ndarray], flow_fn: FlowFn) -> Iterator[np.ndarray]:
    """One raw flow field per frame (see the module docstring for the last frame).

    Args:
        gray_frames: T frames (H, W) uint8.
        flow_fn: from :func:`make_flow_fn`.

    Yields:
        T arrays (H, W, 2) float32 in pixels; field t is the flow from frame t to t+1.
    """
    prev: np.ndarray | None = None
    last: np.ndarray | None = None
    for frame in gray_frames:
        if prev is not None:
            last = flow_fn(prev, frame)
            yield last
        prev = frame
    if prev is None:
        return  # no frames, no flow
    yield last if last is not None else np.zeros((*prev.shape, 2), np.float32)
