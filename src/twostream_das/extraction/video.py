"""Video files: listing, probing, decoding (PyAV) and the two resize recipes (OpenCV, PIL).

Frames are decoded one at a time and resized at once, so memory does not grow with the video's
length: a 10-minute 50Salads video never sits in memory at full resolution.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._deps import require_av, require_cv2

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (
    ".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
)
"""File suffixes (lower case) that ``list_videos`` picks up in a folder."""

KINETICS_RESIZE_RATIO = 256 / 224
"""Short side / crop size of the Kinetics I3D recipe (short side 256, centre crop 224)."""


class ResizeMode(str, enum.Enum):
    """How a frame becomes the square I3D input of side ``image_size``."""

    SQUARE = "square"  # whole frame resized to image_size x image_size (SPEC 8; aspect not kept)
    SHORT_SIDE_CROP = "short-side-crop"  # Kinetics: short side image_size*256/224, centre crop


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    num_frames: int  # frames the container declares; 0 when it does not say
    fps: float  # 0.0 when unknown
    width: int
    height: int
    duration_s: float = 0.0  # 0.0 when unknown


def list_videos(path: str | Path) -> list[Path]:
    """One video file, or the video files directly inside a folder (sorted by name).

    Raises:
        DataError: the path does not exist, a folder holds no video, or two videos would write
            the same feature file (same name, different suffix).
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"video path {path} does not exist")
    videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DataError(
            f"no video files in {path}; expected files ending in {', '.join(VIDEO_SUFFIXES)}"
        )
    seen: dict[str, Path] = {}
    for video in videos:
        if video.stem in seen:
            raise DataError(
                f"{seen[video.stem].name} and {video.name} in {path} would both write "
                f"features named {video.stem}.npy; rename one"
            )
        seen[video.stem] = video
    return videos


def probe_video(path: str | Path) -> VideoInfo:
    """Read the container header: declared frame count, frame rate and size (no decoding)."""
    path = Path(path)
    with _video_stream(path, "read") as (container, stream):
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:  # the container's duration, in microseconds (av.time_base)
            duration = (container.duration or 0) / 1e6
        return VideoInfo(path, int(stream.frames or 0), fps, stream.width, stream.height, duration)


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decode every frame of the first video stream, in order.

    Yields:
        (H, W, 3) uint8 RGB frames at the video's own resolution.

    Raises:
        DataError: the file cannot be opened or decoding fails part-way.
    """
    with _video_stream(Path(path), "decode") as (container, stream):
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


@contextmanager
def _video_stream(path: Path, action: str) -> Iterator[tuple[Any, Any]]:
    """``(container, first video stream)`` of ``path``, open for the ``with`` body; an FFmpeg
    error in the body becomes ``DataError("cannot <action> video <path>: ...")``."""
    av = require_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path} has no video stream")
            yield container, container.streams.video[0]
    except av.FFmpegError as err:
        raise DataError(f"cannot {action} video {path}: {err}") from None


def resize_for_i3d(frame: np.ndarray, image_size: int, mode: ResizeMode | str) -> np.ndarray:
    """Resize a frame before any crop: (H, W, C) -> (image_size, image_size, C) for ``square``,
    or short side ``round(image_size * 256 / 224)`` for ``short-side-crop``. Bilinear (OpenCV),
    as in the Kinetics I3D recipe. Works for RGB frames and grey frames alike."""
    cv2 = require_cv2()
    height, width = frame.shape[:2]
    if ResizeMode(mode) is ResizeMode.SQUARE:
        size = (image_size, image_size)
    else:
        short = round(image_size * KINETICS_RESIZE_RATIO)
        scale = short / min(height, width)
        size = (max(short, round(width * scale)), max(short, round(height * scale)))
    if (width, height) == size:
        return frame
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)  # size is (W, H)


def center_crop(array: np.ndarray, size: int) -> np.ndarray:
    """Centre crop of ``size`` x ``size`` from (H, W, ...) (torchvision's rounding)."""
    height, width = array.shape[:2]
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} from a {height}x{width} array")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return array[top : top + size, left : left + size]


def rgb_to_unit_range(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1], the I3D RGB input scale."""
    return (frame.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)


def rgb_to_gray(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 luma (OpenCV's BT.601 weights)."""
    cv2 = require_cv2()
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
