"""Video files: listing, probing, decoding (PyAV) and the two resize recipes (OpenCV, PIL).

Frames are decoded one at a time and resized at once, so memory does not grow with the video's
length: a 10-minute 50Salads video never sits in memory at full resolution.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Optional, TypeVar

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

    SQUARE = "square"  # whole frame to image_size x image_size (METHOD.md section 8; any aspect)
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


_Image = TypeVar("_Image")

TIME_TOLERANCE_S = 1e-6
"""Two times closer than this are equal (a frame's timestamp against a target time)."""


@dataclass(frozen=True)
class VideoTiming:
    """The decoded video's own time and the rate its features were taken at.

    Times are the video's: 0 is the first decoded frame. A feature column ``k`` is the frame shown
    at ``k / fps`` seconds, so ``k / fps`` is also the video time of a frame in every output.
    """

    source_fps: float  # the video's mean rate: decoded frames / duration_s
    source_frames: int  # frames decoded
    duration_s: float  # end of the last frame (its time + its duration) - time of the first
    fps: float  # the features' rate: the target of the resampling, or source_fps without one
    frames: int  # feature columns T
    resampled: bool  # frames were picked by time at ``fps`` (False: every decoded frame)

    def to_dict(self) -> dict[str, Any]:
        return {"source_fps": self.source_fps, "source_frames": self.source_frames,
                "duration_s": self.duration_s, "fps": self.fps, "frames": self.frames,
                "resampled": self.resampled}


@dataclass
class _Timed(Generic[_Image]):
    time: float  # seconds since the first frame
    duration: Optional[float]  # seconds this frame is shown; None when the file does not say
    image: _Image


class TimedFrames(Generic[_Image]):
    """Decoded frames, optionally resampled to ``fps`` by their timestamps; :attr:`timing`
    describes the video once the frames have been iterated to the end.

    Resampling (``fps`` given): feature frame ``k`` is the decoded frame whose timestamp is
    nearest to ``k / fps`` (ties: the earlier frame), for every ``k`` with ``k / fps`` before
    the end of the last decoded frame. A constant-rate video at exactly ``fps`` keeps every
    frame; at twice ``fps`` it keeps frames 0, 2, 4, ...; a variable-rate video gets the frame on
    screen nearest each target time, so its features are evenly spaced in time whatever the
    file's spacing. ffmpeg's ``fps`` filter (``round=near``) picks frames the same way.

    Args:
        frames: ``(time_s, duration_s or None, image)`` in presentation order; times may start
            anywhere (the first one is the video's 0).
        fps: the target rate, or None to keep every frame.
    """

    def __init__(self, frames: Iterable[tuple[float, Optional[float], _Image]],
                 fps: Optional[float] = None) -> None:
        if fps is not None and not (0 < fps < float("inf")):
            raise ValueError(f"fps {fps!r} is invalid; expected a finite number > 0")
        self._frames = frames
        self.fps = fps
        self._timing: Optional[VideoTiming] = None

    @property
    def timing(self) -> VideoTiming:
        if self._timing is None:
            raise RuntimeError("the video's timing is known once its frames were iterated")
        return self._timing

    def __iter__(self) -> Iterator[_Image]:
        decoded = self._decoded()
        first = next(decoded, None)
        if first is None:
            self._timing = VideoTiming(0.0, 0, 0.0, self.fps or 0.0, 0, self.fps is not None)
            return
        if self.fps is None:
            yield from self._every(first, decoded)
        else:
            yield from self._resampled(first, decoded, self.fps)

    def _decoded(self) -> Iterator[_Timed[_Image]]:
        """Frames with times relative to the first one."""
        start: Optional[float] = None
        for time, duration, image in self._frames:
            start = time if start is None else start
            yield _Timed(time - start, duration if duration and duration > 0 else None, image)

    def _every(self, first: _Timed[_Image], rest: Iterator[_Timed[_Image]]) -> Iterator[_Image]:
        count, last, spacing = 0, first, None
        for frame in _chain(first, rest):
            if count:
                spacing = frame.time - last.time
            last, count = frame, count + 1
            yield frame.image
        end = _end_time(last, spacing, count)
        rate = count / end if end > 0 else 0.0
        self._timing = VideoTiming(rate, count, end, rate, count, False)

    def _resampled(self, first: _Timed[_Image], rest: Iterator[_Timed[_Image]],
                   fps: float) -> Iterator[_Image]:
        current, upcoming = first, next(rest, None)
        count, spacing, k = 1, None, 0
        while True:
            target = k / fps
            # move on while the next decoded frame is strictly nearer to the target time
            while upcoming is not None and (
                upcoming.time - target < target - current.time - TIME_TOLERANCE_S
                or upcoming.time <= target + TIME_TOLERANCE_S
            ):
                spacing = upcoming.time - current.time
                current, upcoming, count = upcoming, next(rest, None), count + 1
            if upcoming is None and target >= _end_time(current, spacing, count) - TIME_TOLERANCE_S:
                break
            yield current.image
            k += 1
        end = _end_time(current, spacing, count)
        self._timing = VideoTiming(count / end if end > 0 else 0.0, count, end, fps, k, True)


def _chain(first: _Timed[_Image], rest: Iterator[_Timed[_Image]]) -> Iterator[_Timed[_Image]]:
    yield first
    yield from rest


def _end_time(last: _Timed[Any], spacing: Optional[float], count: int) -> float:
    """When the last frame stops being shown: its time plus its duration (the spacing of the
    last two frames when the file does not say; the mean spacing as a last resort)."""
    if last.duration is not None:
        return last.time + last.duration
    if spacing is not None and spacing > 0:
        return last.time + spacing
    if count > 1 and last.time > 0:
        return last.time * count / (count - 1)
    return last.time  # a single frame of unknown duration: a video of length 0


def timed_frames(path: str | Path, fps: Optional[float] = None) -> TimedFrames[np.ndarray]:
    """Decoded (H, W, 3) uint8 RGB frames of ``path`` resampled to ``fps`` by their
    timestamps (every frame when None); :attr:`TimedFrames.timing` after the iteration."""
    return TimedFrames(_iter_timed(Path(path)), fps)


def _iter_timed(path: Path) -> Iterator[tuple[float, Optional[float], np.ndarray]]:
    with _video_stream(path, "decode") as (container, stream):
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate) if stream.average_rate else 0.0
        for index, frame in enumerate(container.decode(stream)):
            time = frame.time
            if time is None:  # no timestamps (raw streams): the declared rate
                if not rate:
                    raise DataError(f"{path} has neither frame timestamps nor a frame rate")
                time = index / rate
            duration = None
            if getattr(frame, "duration", None) and frame.time_base:
                duration = float(frame.duration * frame.time_base)
            yield float(time), duration, frame.to_ndarray(format="rgb24")


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
