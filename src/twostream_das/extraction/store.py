"""Feature files on disk: atomic writes, completeness checks, leftovers of killed runs.

``<out>/manifest.json`` (:func:`write_manifest`) lists what exists once an ``extract`` is done:
per video its frames and, per stream, the file, its (D, T) shape and its size in bytes.

A feature file is written by :func:`twostream_das.atomic.atomic_save_npy`: to a hidden temporary
file in the same folder, flushed to disk, then renamed over the target (``os.replace`` is atomic
on one file system), so a reader or a resumed run never sees half a file. A run killed between
the two leaves only the hidden temporary file (``.<video>.npy.<random>.tmp``), which no
``*.npy`` glob matches and the next run deletes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..atomic import TMP_SUFFIX, atomic_write_text

MANIFEST_FILE = "manifest.json"
VIDEO_INFO_DIR = "video_info"
"""``<out>/video_info/<video>.json``: the video's own rate, frames and duration, and the rate and
number of its feature columns (:class:`.video.VideoTiming`), written with its features."""

logger = logging.getLogger(__name__)


def remove_stale_temps(path: Path) -> None:
    """Delete temporary files a killed run left for ``path``."""
    if path.parent.is_dir():
        for leftover in path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"):
            logger.info("removing %s, left by an interrupted run", leftover)
            leftover.unlink(missing_ok=True)


def is_complete(path: Path, dim: int, num_frames: int) -> bool:
    """True when ``path`` holds finite float32 features of shape (dim, num_frames).

    ``num_frames`` 0 means the frame count is unknown (the container does not declare it);
    then any T >= 1 is accepted, relying on the atomic writes for completeness.
    """
    if not path.is_file():
        return False
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        logger.warning("%s is unreadable (%s); extracting it again", path, err)
        return False
    frames = array.shape[1] if array.ndim == 2 else -1
    frames_ok = frames == num_frames if num_frames > 0 else frames >= 1
    if array.ndim != 2 or array.dtype != np.float32 or array.shape[0] != dim or not frames_ok:
        logger.warning("%s has shape %s %s, expected (%d, %s) float32; extracting it again",
                       path, array.shape, array.dtype, dim, num_frames or "T")
        return False
    if not np.isfinite(array).all():
        logger.warning("%s holds NaN or inf; extracting it again", path)
        return False
    return True


def video_info_path(root: Path, video: str) -> Path:
    return root / VIDEO_INFO_DIR / f"{video}.json"


def write_video_info(root: Path, video: str, info: Mapping[str, Any]) -> Path:
    """Write ``root/video_info/<video>.json`` atomically."""
    path = video_info_path(root, video)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(dict(info), indent=2) + "\n")
    return path


def read_video_info(root: Path, video: str) -> Optional[dict[str, Any]]:
    """The ``video_info`` of ``video`` under ``root``; None when there is none or it cannot be
    read (then the features are taken as of unknown rate)."""
    path = video_info_path(root, video)
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        logger.warning("%s cannot be read (%s); ignoring it", path, err)
        return None
    return info if isinstance(info, dict) else None


def describe_file(path: Path, root: Path) -> dict[str, Any]:
    """``{"path": relative to root, "dims": [D, T], "dtype", "bytes"}`` from the .npy header
    (the data is not read), or ``{"path", "missing": true}``."""
    entry: dict[str, Any] = {"path": path.relative_to(root).as_posix()}
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        entry["missing"] = True
        return entry
    entry.update(dims=list(array.shape), dtype=str(array.dtype), bytes=path.stat().st_size)
    return entry


def write_manifest(root: Path, files: Mapping[str, Mapping[str, Path]], streams: Sequence[str],
                   recipe: Mapping[str, Any], sources: Mapping[str, str]) -> Path:
    """Write ``root/manifest.json`` atomically: what exists for each video.

    Args:
        files: video name -> {stream (or ``combined``) -> feature file}.
        streams: the extracted streams, in order.
        recipe: the settings that decide the features' values.
        sources: video name -> the video file's name.

    Returns:
        The manifest's path. Its ``videos`` are sorted by name; ``frames`` is the T of the
        video's files (None when they disagree or none exists); ``fps`` is their rate,
        ``source_fps`` and ``duration_s`` the video's own (from ``video_info``; None when not
        recorded); ``complete`` is true when every listed file exists.
    """
    videos = []
    for name in sorted(files):
        entries = {key: describe_file(path, root) for key, path in files[name].items()}
        lengths = {e["dims"][-1] for e in entries.values() if "dims" in e}
        info = read_video_info(root, name) or {}
        videos.append({
            "video": name,
            "source": sources[name],
            "frames": lengths.pop() if len(lengths) == 1 else None,
            "fps": info.get("fps"),  # the features' rate; None when not recorded
            "source_fps": info.get("source_fps"),
            "duration_s": info.get("duration_s"),
            "complete": not any(e.get("missing") for e in entries.values()),
            "files": entries,
        })
    manifest = {
        "streams": list(streams),
        "recipe": dict(recipe),
        "num_videos": len(videos),
        "complete": all(v["complete"] for v in videos),
        "total_frames": sum(v["frames"] or 0 for v in videos),
        "total_bytes": sum(e.get("bytes", 0) for v in videos for e in v["files"].values()),
        "videos": videos,
    }
    path = root / MANIFEST_FILE
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
    return path
