"""Segment annotations (CSV/TSV from ELAN, CVAT, Label Studio, BORIS, a spreadsheet) -> the
MS-TCN layout: ``groundTruth/<video>.txt`` at the features' rate and ``mapping.txt``.

An annotation is a table with a header: one row per segment with its start, its end and its
label, and, when one file holds several videos, the video. Times are seconds (``12.5``,
``0:12.5``, ``00:00:12.500``) or frame numbers (``--units frames``; a header such as
``start_frame`` says so too). Frame numbers count the video's own frames (its rate from
``video_info/``, written by ``extract``), so annotations made on the video fit features taken at
another rate; end frames are exclusive unless ``inclusive_end``.

Feature frame ``k`` is the video's time ``k / fps`` (``fps`` the features' rate); it takes the
label of the segment covering that time: frames ``round(start * fps)`` to ``round(end * fps)``
(exclusive). Frames no segment covers take the background class. Segments of one video must not
overlap; nothing may lie beyond the video's end (one frame of slack for rounding).

The number of frames and their rate come from ``<root>/video_info/<video>.json`` (written by
``extract``), else from a feature file ``<root>/<folder>/<video>.npy`` and ``--fps``.
"""

from __future__ import annotations

import csv
import enum
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..atomic import atomic_write_text
from ..config import Orientation
from ..data.layout import GROUND_TRUTH_DIR, MAPPING_FILE, SPLITS_DIR, read_mapping
from ..errors import ConfigError, DataError
from ..extraction.store import VIDEO_INFO_DIR, read_video_info

logger = logging.getLogger(__name__)

DEFAULT_BACKGROUND = "background"
ANNOTATION_SUFFIXES = (".csv", ".tsv", ".txt")
VIDEO_SUFFIXES = re.compile(r"\.(mp4|avi|mkv|mov|webm|m4v|mpg|mpeg|wmv|flv)$", re.IGNORECASE)

COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "start": ("start", "start_s", "start_sec", "start_seconds", "start_time", "starttime",
              "begin", "begin_time", "begin_time_ss_msec", "begin_time_hh_mm_ss_ms", "onset",
              "from", "t_start", "start_frame", "startframe", "frame_start", "begin_frame"),
    "end": ("end", "end_s", "end_sec", "end_seconds", "end_time", "endtime", "stop",
            "stop_time", "end_time_ss_msec", "end_time_hh_mm_ss_ms", "offset", "to", "t_end",
            "end_frame", "endframe", "frame_end", "stop_frame"),
    "duration": ("duration", "duration_s", "duration_sec", "duration_ss_msec", "dur"),
    "label": ("label", "action", "class", "class_name", "activity", "annotation", "behavior",
              "behaviour", "verb", "step", "phase", "tag", "value", "name"),
    "video": ("video", "video_name", "video_id", "videoid", "file", "filename", "file_name",
              "media", "media_file", "media_file_name", "observation_id", "clip", "recording"),
}
"""Accepted header names (lower case; spaces, dashes and dots read as ``_``; ``(s)`` dropped)."""


class TimeUnit(str, enum.Enum):
    AUTO = "auto"  # frames when the start column's name says frame, else seconds
    SECONDS = "seconds"
    FRAMES = "frames"


@dataclass(frozen=True)
class Segment:
    video: str
    label: str
    start: float  # seconds, or a frame number of the video's own rate (see ``frames``)
    end: float  # exclusive
    frames: bool  # start/end are frame numbers
    where: str  # "<file> line <n>", for errors


@dataclass(frozen=True)
class VideoFrames:
    """How many feature frames a video has and at which rate."""

    frames: int
    fps: float  # the features' rate
    source_fps: Optional[float]  # the video's own rate (frame numbers of annotations count it)
    where: str  # where the numbers came from, for errors


@dataclass(frozen=True)
class ImportSummary:
    videos: list[str]
    classes: list[str]  # mapping.txt, in id order
    background_frames: int
    frames: int
    unannotated: list[str]  # videos with features but no annotation (not written)
    mapping_written: bool


# -- reading the tables ------------------------------------------------------------------------


def _normalize(name: str) -> str:
    name = name.strip().lstrip("\ufeff").lower().replace("(s)", "").replace("(sec)", "")
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_")


def parse_columns(text: str) -> dict[str, str]:
    """``--columns START,END,LABEL[,VIDEO]`` -> ``{"start": ..., "end": ..., ...}``."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (3, 4) or not all(parts):
        raise ConfigError(f"--columns {text!r} is invalid; expected START,END,LABEL[,VIDEO] "
                          "header names")
    return dict(zip(("start", "end", "label", "video"), parts, strict=False))


def _find_columns(header: Sequence[str], path: Path,
                  given: Optional[Mapping[str, str]]) -> dict[str, int]:
    """Column index of start, end (or duration), label and (optional) video."""
    names = [_normalize(h) for h in header]
    found: dict[str, int] = {}
    if given:
        for role, name in given.items():
            if _normalize(name) not in names:
                raise DataError(f"{path}: --columns names {name!r}, which is not a column; "
                                f"expected one of {', '.join(h.strip() for h in header)}")
            found[role] = names.index(_normalize(name))
        return found
    for role, accepted in COLUMN_NAMES.items():
        for i, name in enumerate(names):
            if name in accepted and i not in found.values():
                found[role] = i
                break
    missing = [r for r in ("start", "label") if r not in found]
    if "end" not in found and "duration" not in found:
        missing.insert(1, "end")
    if missing:
        raise DataError(
            f"{path}: columns {', '.join(repr(h.strip()) for h in header)} have no "
            f"{' or '.join(missing)} column; expected a header naming start, end and label "
            f"(e.g. start,end,label or Begin Time - ss.msec, End Time - ss.msec, Behavior), or "
            "--columns START,END,LABEL[,VIDEO]"
        )
    return found


def _dialect(path: Path, first_line: str) -> str:
    if path.suffix.lower() == ".tsv" or "\t" in first_line:
        return "\t"
    if ";" in first_line and "," not in first_line:
        return ";"
    return ","


def parse_time(text: str) -> float:
    """``12.5`` or ``1:02.5`` or ``00:01:02.500`` -> seconds (ValueError otherwise)."""
    text = text.strip()
    if ":" in text:
        parts = [float(p) for p in text.split(":")]
        if len(parts) > 3 or any(p < 0 for p in parts[1:]):
            raise ValueError(text)
        value = 0.0
        for part in parts:
            value = value * 60 + part
        return value
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(text)
    return value


def read_annotation_file(path: Path, units: TimeUnit = TimeUnit.AUTO,
                         columns: Optional[Mapping[str, str]] = None) -> list[Segment]:
    """The segments of one CSV/TSV file (the video from its column, else the file's name)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; expected a CSV/TSV file") from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"{path} is empty; expected a header and one row per segment")
    first = next(line for line in lines if line.strip())
    rows = list(csv.reader((line for line in lines if line.strip()),
                           delimiter=_dialect(path, first)))
    header, body = rows[0], rows[1:]
    cols = _find_columns(header, path, columns)
    start_name = _normalize(header[cols["start"]])
    frames = units is TimeUnit.FRAMES or (units is TimeUnit.AUTO and "frame" in start_name)
    segments = []
    for lineno, row in enumerate(body, start=2):
        where = f"{path} line {lineno}"
        if len(row) < len(header):
            row = row + [""] * (len(header) - len(row))
        label = row[cols["label"]].strip()
        if not label:
            raise DataError(f"{where}: the label is empty; expected a class name")
        if any(c.isspace() for c in label):
            label = re.sub(r"\s+", "_", label)  # groundTruth files hold one name per line
        start = _number(row[cols["start"]], where, "start", frames)
        if "end" in cols:
            end = _number(row[cols["end"]], where, "end", frames)
        else:
            end = start + _number(row[cols["duration"]], where, "duration", frames)
        if "video" in cols:
            video = VIDEO_SUFFIXES.sub("", Path(row[cols["video"]].strip()).name)
            if not video:
                raise DataError(f"{where}: the video is empty; expected a video name")
        else:
            video = path.stem
        if start < 0:
            raise DataError(f"{where}: segment {label!r} starts at {start:g}, before the video; "
                            "expected start >= 0")
        if end <= start:
            raise DataError(f"{where}: segment {label!r} ends at {end:g}, not after its start "
                            f"{start:g}; expected end > start")
        segments.append(Segment(video, label, start, end, frames, where))
    if not segments:
        raise DataError(f"{path} has a header but no rows; expected one row per segment")
    return segments


def _number(text: str, where: str, what: str, frames: bool) -> float:
    try:
        return float(int(text)) if frames else parse_time(text)
    except ValueError:
        expected = "a frame number" if frames else "seconds (12.5) or h:mm:ss.ms"
        raise DataError(f"{where}: {what} {text.strip()!r} is not a number; expected "
                        f"{expected}") from None


def read_annotations(path: str | Path, units: TimeUnit = TimeUnit.AUTO,
                     columns: Optional[Mapping[str, str]] = None) -> list[Segment]:
    """Segments of a file, or of every ``.csv``/``.tsv``/``.txt`` file in a folder."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in ANNOTATION_SUFFIXES)
        if not files:
            raise DataError(f"{path} holds no annotation files; expected .csv or .tsv files "
                            "(one per video, or one with a video column)")
    else:
        raise DataError(f"annotations {path} do not exist; expected a CSV/TSV file or a folder "
                        "of them")
    return [s for f in files for s in read_annotation_file(f, TimeUnit(units), columns)]


# -- the videos' frames ----------------------------------------------------------------------


def video_frames(root: Path, video: str, fps: Optional[float],
                 orientation: Orientation = Orientation.DxT) -> VideoFrames:
    """Frames and rate of a video's features: ``video_info/`` first, else a feature file."""
    info = read_video_info(root, video)
    if info is not None and info.get("frames"):
        rate = float(info.get("fps") or 0)
        if fps is not None and abs(rate - fps) > 1e-6 * fps:
            raise ConfigError(f"--fps {fps:g} disagrees with {root / VIDEO_INFO_DIR}/{video}.json "
                              f"(features at {rate:g} fps); expected no --fps or {rate:g}")
        return VideoFrames(int(info["frames"]), rate, info.get("source_fps"),
                           f"{root / VIDEO_INFO_DIR}/{video}.json")
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        path = folder / f"{video}.npy"
        if folder.name in (GROUND_TRUTH_DIR, SPLITS_DIR) or not path.is_file():
            continue
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"cannot read {path}: {err}; expected a .npy feature file") from None
        if len(shape) != 2:
            raise DataError(f"{path} has shape {shape}; expected a 2-D feature file")
        if fps is None:
            raise ConfigError(f"the features' rate of {video} is not recorded (no "
                              f"{VIDEO_INFO_DIR}/{video}.json from extract); give --fps")
        frames = shape[1] if orientation is Orientation.DxT else shape[0]
        return VideoFrames(int(frames), fps, None, f"{path} ({orientation.value})")
    raise DataError(f"video {video!r} has no features in {root}: expected "
                    f"{VIDEO_INFO_DIR}/{video}.json or a <folder>/{video}.npy (run "
                    "twostream-das extract first)")


def _seconds(seg: Segment, value: float, info: VideoFrames, inclusive_end: bool,
             is_end: bool) -> float:
    if not seg.frames:
        return value
    rate = info.source_fps or info.fps
    return (value + (1 if inclusive_end and is_end else 0)) / rate


def frame_labels(segments: Sequence[Segment], info: VideoFrames,
                 inclusive_end: bool = False) -> list[Optional[str]]:
    """Per feature frame: the label of the segment covering it, or None (background)."""
    spans = []
    for seg in segments:
        start = _seconds(seg, seg.start, info, inclusive_end, False)
        end = _seconds(seg, seg.end, info, inclusive_end, True)
        spans.append((start, end, seg))
    spans.sort(key=lambda s: (s[0], s[1]))
    duration = info.frames / info.fps
    for (s0, e0, a), (s1, e1, b) in zip(spans, spans[1:], strict=False):
        if s1 < e0 - 1e-6:
            raise DataError(
                f"{b.where}: segment {b.label!r} ({s1:g}-{e1:g} s) overlaps {a.label!r} "
                f"({s0:g}-{e0:g} s, {a.where}) in video {a.video}; expected segments that do "
                "not overlap"
            )
    labels: list[Optional[str]] = [None] * info.frames
    for start, end, seg in spans:
        if end > duration + 1.0 / info.fps + 1e-6:
            raise DataError(
                f"{seg.where}: segment {seg.label!r} ends at {end:g} s, after the end of video "
                f"{seg.video} at {duration:g} s ({info.frames} frames at {info.fps:g} fps, "
                f"{info.where}); expected times within the video"
            )
        first, stop = _frame(start, info.fps), min(_frame(end, info.fps), info.frames)
        if stop <= first:
            logger.warning("%s: segment %r (%g-%g s) is shorter than a frame at %g fps; dropped",
                           seg.where, seg.label, start, end, info.fps)
            continue
        labels[first:stop] = [seg.label] * (stop - first)
    return labels


def _frame(seconds: float, fps: float) -> int:
    """The feature frame at ``seconds``: halves round up (Python's ``round`` rounds them to
    even, which would shift every other boundary)."""
    return int(np.floor(seconds * fps + 0.5 + 1e-9))


# -- writing -------------------------------------------------------------------------------


def import_annotations(
    annotations: str | Path,
    dataset: str | Path,
    *,
    fps: Optional[float] = None,
    units: TimeUnit | str = TimeUnit.AUTO,
    background: str = DEFAULT_BACKGROUND,
    columns: Optional[Mapping[str, str]] = None,
    inclusive_end: bool = False,
    orientation: Orientation | str = Orientation.DxT,
    overwrite: bool = False,
) -> ImportSummary:
    """Write ``groundTruth/<video>.txt`` for every annotated video and ``mapping.txt``.

    Args:
        annotations: a CSV/TSV file or a folder of them (see the module docstring).
        dataset: the dataset folder holding the features (``extract --out``).
        fps: the features' rate where ``video_info/`` does not record it.
        units: seconds, frames, or auto (from the start column's name).
        background: the class of frames no segment covers.
        columns: header names of start, end, label (and video), when not recognised.
        inclusive_end: end frame numbers are the segment's last frame.
        orientation: axis order of feature files read for their length (no ``video_info``).
        overwrite: replace existing ``groundTruth/`` files of these videos.

    Raises:
        DataError: unreadable or unrecognised tables, end before start, overlaps, segments
            beyond a video's end, videos without features, an existing ``mapping.txt``
            lacking classes, existing ground truth without ``overwrite``.
        ConfigError: a bad ``fps`` or ``background``.
    """
    if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps < float("inf")):
        raise ConfigError(f"--fps {fps!r} is invalid; expected a finite number > 0")
    if not background or any(c.isspace() for c in background):
        raise ConfigError(f"--background {background!r} is invalid; expected a class name "
                          "without spaces")
    root = Path(dataset)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist; expected the folder extract "
                        "wrote the features to")
    by_video: dict[str, list[Segment]] = defaultdict(list)
    for seg in read_annotations(annotations, TimeUnit(units), columns):
        by_video[seg.video].append(seg)
    frames = {v: video_frames(root, v, fps, Orientation(orientation)) for v in sorted(by_video)}
    labels = {v: frame_labels(by_video[v], frames[v], inclusive_end) for v in frames}
    used_background = any(label is None for per in labels.values() for label in per)
    names = sorted({seg.label for segs in by_video.values() for seg in segs} - {background})
    classes = ([background] if used_background or background in _all_labels(by_video) else [])
    classes += names
    mapping_written = _write_mapping(root, classes)
    if mapping_written is False:
        classes = list(read_mapping(root / MAPPING_FILE).names)
    truth = root / GROUND_TRUTH_DIR
    existing = [v for v in labels if (truth / f"{v}.txt").exists()]
    if existing and not overwrite:
        raise DataError(f"{truth / existing[0]}.txt exists ({len(existing)} of the annotated "
                        "videos have ground truth); expected new files, or --overwrite")
    for video, per in labels.items():
        text = "".join(f"{label or background}\n" for label in per)
        atomic_write_text(truth / f"{video}.txt", text)
    unannotated = sorted(set(_featured_videos(root)) - set(labels))
    if unannotated:
        logger.warning("%d video(s) have features but no annotation (%s); they get no ground "
                       "truth", len(unannotated), ", ".join(unannotated[:5]))
    total = sum(len(per) for per in labels.values())
    back = sum(label is None for per in labels.values() for label in per)
    logger.info("wrote %d ground-truth file(s) in %s: %d frames, %d classes, %.0f%% background",
                len(labels), truth, total, len(classes), 100 * back / max(total, 1))
    return ImportSummary(sorted(labels), classes, back, total, unannotated, mapping_written)


def _all_labels(by_video: Mapping[str, Iterable[Segment]]) -> set[str]:
    return {seg.label for segs in by_video.values() for seg in segs}


def _write_mapping(root: Path, classes: Sequence[str]) -> bool:
    """Write ``mapping.txt`` (background first, then by name); keep an existing one that
    holds every class (False). Raises DataError when it lacks some."""
    path = root / MAPPING_FILE
    if path.exists():
        have = read_mapping(path)
        missing = [c for c in classes if c not in have]
        if missing:
            raise DataError(f"{path} exists and lacks the annotated classes "
                            f"{', '.join(map(repr, missing[:5]))}; expected every class in it "
                            "(remove it to have a new one written)")
        return False
    atomic_write_text(path, "".join(f"{i} {name}\n" for i, name in enumerate(classes)))
    return True


def _featured_videos(root: Path) -> set[str]:
    names = {p.stem for p in (root / VIDEO_INFO_DIR).glob("*.json")}
    for folder in root.iterdir():
        if folder.is_dir() and folder.name.startswith("features"):
            names.update(p.stem for p in folder.glob("*.npy"))
    return names
