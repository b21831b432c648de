"""Files this package writes and reads besides datasets and checkpoints.

- **MS-TCN prediction files** (``<video>.txt``), as MS-TCN, ASFormer and DiffAct write them: the
  header line ``### Frame level recognition: ###``, then one line of space-separated class
  names, one per frame. :func:`read_prediction` also accepts one name per line (or any mix of
  spaces and line breaks) after the header, blank lines, ``\\r\\n`` endings and a UTF-8 BOM.
- **Segments** (``.csv`` / ``.json``): one record per segment with ``label``, ``label_id``,
  ``start_frame`` (inclusive), ``end_frame`` (**exclusive**, so ``end_frame - start_frame`` is the
  length and the next segment starts at this one's ``end_frame``), ``num_frames``, ``start_s`` and
  ``end_s`` (``frame / fps``: the times of the segment's first frame and of the frame after its
  last, so consecutive segments share a boundary time) and ``confidence``: the mean probability of
  the segment's label over its frames (empty when no probabilities are given).

Every file is written atomically (:mod:`twostream_das.atomic`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from .atomic import atomic_write_text
from .errors import DataError
from .metrics import segment_bounds

if TYPE_CHECKING:  # the data package imports torch; this module must stay light
    from .data.layout import LabelMap

logger = logging.getLogger(__name__)

PREDICTION_HEADER = "### Frame level recognition: ###"
STREAMS_DIR = "streams"
"""Subfolder of a prediction folder (and of a run's ``predictions/``) holding one folder of
MS-TCN files per stream, each stream's prediction before fusion."""
SEGMENT_FIELDS: tuple[str, ...] = (
    "label", "label_id", "start_frame", "end_frame", "num_frames", "start_s", "end_s", "confidence",
    "uncertainty",
)
UNCERTAINTY_SUFFIX = "_uncertainty.npy"  # <video>_uncertainty.npy: (T,) float32 per frame
_PREVIEW = 12  # class names listed in an error message
_MISSING_SHOWN = 5  # missing prediction files named in an error message

LabelLookup = Union["LabelMap", Sequence[str], Mapping[str, int]]
"""Class names -> ids: a ``LabelMap``, names in id order, or a mapping name -> id."""


# --------------------------------------------------------------------------- predictions


def _frame_labels(
    labels: ArrayLike, names: Optional[Sequence[str]], what: str
) -> tuple[list[str], Optional[np.ndarray]]:
    """Frame labels as class names, and as class ids where those are known.

    Args:
        labels: (T,) class ids (looked up in ``names``) or class names.
        names: class names in id order, or None.
        what: the file or object named in error messages.

    Returns:
        ``(names (T,), ids (T,) int64 or None)``; ids are None for names without ``names``.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what}: labels have shape {arr.shape}; expected (T,) with T >= 1")
    if arr.dtype.kind in "US" or (arr.dtype.kind == "O" and isinstance(arr[0], str)):
        frame_names = [str(x) for x in arr.tolist()]
        ids = None
        if names is not None:
            index = {n: i for i, n in enumerate(names)}
            unknown = next((x for x in frame_names if x not in index), None)
            if unknown is not None:
                raise ValueError(f"{what}: label {unknown!r} is not a known class name")
            ids = np.fromiter((index[x] for x in frame_names), np.int64, len(frame_names))
    else:
        if names is None:
            raise ValueError(f"{what}: labels are class ids; expected the class names to map them")
        ids = arr.astype(np.int64)
        bad = arr[(ids < 0) | (ids >= len(names)) | (ids != arr)]
        if bad.size:
            raise ValueError(
                f"{what}: class id {bad[0].item()!r} is invalid; expected integers "
                f"0..{len(names) - 1}"
            )
        frame_names = [names[i] for i in ids.tolist()]
    spaced = next((n for n in frame_names if not n or any(c.isspace() for c in n)), None)
    if spaced is not None:
        raise ValueError(
            f"{what}: class name {spaced!r} is empty or holds white space, which the MS-TCN "
            "prediction format cannot store"
        )
    return frame_names, ids


def write_prediction(
    path: str | Path, labels: ArrayLike, names: Optional[Sequence[str]] = None
) -> Path:
    """Write an MS-TCN prediction file atomically.

    Args:
        path: the ``<video>.txt`` to write.
        labels: (T,) class ids (then ``names`` is required) or class names.
        names: class names in id order (``names[i]`` is class ``i``).

    Returns:
        ``path``. The file is the header line, then the T names on one line, then a newline.
    """
    frame_names, _ = _frame_labels(labels, names, str(path))
    return atomic_write_text(path, f"{PREDICTION_HEADER}\n{' '.join(frame_names)}\n")


def write_label_files(
    folder: Path,
    name: str,
    fused: ArrayLike,
    streams: Mapping[str, ArrayLike],
    names: Sequence[str],
) -> Path:
    """``folder/<name>.txt`` (the fused labels) and ``folder/streams/<stream>/<name>.txt`` (each
    stream's), MS-TCN files (:func:`write_prediction`); returns the fused file."""
    path = write_prediction(folder / f"{name}.txt", fused, names)
    for stream, labels in streams.items():
        write_prediction(folder / STREAMS_DIR / stream / f"{name}.txt", labels, names)
    return path


def read_prediction_names(path: str | Path) -> list[str]:
    """The per-frame class names of an MS-TCN prediction file.

    Raises:
        DataError: missing or unreadable file, a first line that is not the header, no labels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prediction file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"prediction file {path} is not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise DataError(f"cannot read prediction file {path}: {err.strerror or err}") from None
    lines = [line.strip() for line in text.splitlines()]
    first = next((i for i, line in enumerate(lines) if line), None)
    if first is None:
        raise DataError(f"prediction file {path} is empty; expected {PREDICTION_HEADER!r} first")
    if lines[first] != PREDICTION_HEADER:
        raise DataError(
            f"{path} line {first + 1}: {lines[first][:60]!r}; expected the header "
            f"{PREDICTION_HEADER!r}"
        )
    frame_names = " ".join(lines[first + 1 :]).split()
    if not frame_names:
        raise DataError(f"prediction file {path} has a header but no labels; expected T names")
    return frame_names


def read_prediction(path: str | Path, label_map: LabelLookup) -> np.ndarray:
    """An MS-TCN prediction file as class ids.

    Args:
        path: the ``<video>.txt``.
        label_map: a :class:`~twostream_das.data.layout.LabelMap`, a sequence of class names
            in id order, or a mapping name -> id.

    Returns:
        (T,) int64 class ids.

    Raises:
        DataError: as :func:`read_prediction_names`, or a name not in ``label_map`` (with its
        frame index).
    """
    ids = _name_to_id(label_map)
    frame_names = read_prediction_names(path)
    try:
        return np.fromiter((ids[n] for n in frame_names), dtype=np.int64, count=len(frame_names))
    except KeyError:
        frame = next(i for i, n in enumerate(frame_names) if n not in ids)
        known = list(ids)
        more = f", ... ({len(known)} in all)" if len(known) > _PREVIEW else ""
        raise DataError(
            f"{path}: label {frame_names[frame]!r} at frame {frame} is not a known class; "
            f"expected one of {', '.join(known[:_PREVIEW])}{more}"
        ) from None


def _name_to_id(label_map: LabelLookup) -> dict[str, int]:
    if isinstance(label_map, Mapping):
        return {str(k): int(v) for k, v in label_map.items()}
    names = getattr(label_map, "names", label_map)
    return {str(name): i for i, name in enumerate(names)}


# --------------------------------------------------------------------------- segments


@dataclass(frozen=True)
class SegmentRecord:
    """One predicted segment as written to CSV/JSON (frames ``start_frame <= t < end_frame``)."""

    label: str
    label_id: Optional[int]
    start_frame: int
    end_frame: int  # exclusive
    num_frames: int
    start_s: Optional[float]
    end_s: Optional[float]
    confidence: Optional[float]  # mean probability of ``label`` over the segment
    uncertainty: Optional[float] = None  # mean per-frame uncertainty over the segment


def segment_records(
    labels: ArrayLike,
    probs: Optional[ArrayLike] = None,
    names: Optional[Sequence[str]] = None,
    fps: Optional[float] = None,
    uncertainty: Optional[ArrayLike] = None,
) -> list[SegmentRecord]:
    """The segments of a label sequence with times, confidences and uncertainties.

    Args:
        labels: (T,) class ids (``names`` then maps them) or class names.
        probs: (C, T) class probabilities, for ``confidence`` (needs class ids, or names with
            ``names`` to find their rows); None leaves it empty.
        names: class names in id order.
        fps: frames per second for ``start_s``/``end_s``; None leaves them empty.
        uncertainty: (T,) per-frame uncertainty, averaged per segment; None leaves it empty.

    Returns:
        One :class:`SegmentRecord` per segment, in order.
    """
    frame_names, ids = _frame_labels(labels, names, "segments")
    prob_arr = _check_probs(probs, len(frame_names), ids)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps {fps!r} is invalid; expected a positive number")
    frame_unc = None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    if frame_unc is not None and frame_unc.shape != (len(frame_names),):
        raise ValueError(
            f"uncertainty has shape {frame_unc.shape}; expected ({len(frame_names)},) for "
            f"{len(frame_names)} labels"
        )
    seg_names, starts, ends = segment_bounds(np.asarray(frame_names))
    records = []
    for name, start, end in zip(seg_names.tolist(), starts.tolist(), ends.tolist(), strict=True):
        label_id = None if ids is None else int(ids[start])
        conf = None
        if prob_arr is not None and label_id is not None:
            conf = float(prob_arr[label_id, start:end].mean())
        records.append(
            SegmentRecord(
                label=name,
                label_id=label_id,
                start_frame=start,
                end_frame=end,
                num_frames=end - start,
                start_s=None if fps is None else start / fps,
                end_s=None if fps is None else end / fps,
                confidence=conf,
                uncertainty=None if frame_unc is None else float(frame_unc[start:end].mean()),
            )
        )
    return records


def _check_probs(
    probs: Optional[ArrayLike], num_frames: int, ids: Optional[np.ndarray]
) -> Optional[np.ndarray]:
    if probs is None:
        return None
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != num_frames:
        raise ValueError(
            f"probabilities have shape {arr.shape}; expected (C, {num_frames}) for {num_frames} "
            "labels"
        )
    if ids is not None and ids.size and int(ids.max()) >= arr.shape[0]:
        raise ValueError(
            f"class id {int(ids.max())} has no row in probabilities of shape {arr.shape}"
        )
    return arr


def segments_csv_text(records: Sequence[SegmentRecord]) -> str:
    """CSV with a header row of :data:`SEGMENT_FIELDS`; empty cells for missing values."""
    return csv_text(SEGMENT_FIELDS, [asdict(rec) for rec in records])


def csv_text(fields: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV of ``rows`` under a header of ``fields``; None (or a missing key) as an empty cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    return buffer.getvalue()


def segments_json_obj(
    records: Sequence[SegmentRecord], fps: Optional[float] = None
) -> dict[str, Any]:
    """``{"fps", "num_frames", "end_frame": "exclusive", "segments": [record, ...]}``."""
    return {
        "fps": fps,
        "num_frames": records[-1].end_frame if records else 0,
        "end_frame": "exclusive",
        "segments": [asdict(rec) for rec in records],
    }


def write_segments_csv(path: str | Path, records: Sequence[SegmentRecord]) -> Path:
    """Write ``records`` (from :func:`segment_records`) as CSV (:func:`segments_csv_text`),
    atomically. Returns ``path``."""
    return atomic_write_text(path, segments_csv_text(records))


def write_csv_rows(
    path: str | Path, fields: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> Path:
    """A CSV of ``rows`` (:func:`csv_text`), written atomically."""
    return atomic_write_text(path, csv_text(fields, rows))


def write_segments_json(
    path: str | Path, records: Sequence[SegmentRecord], fps: Optional[float] = None
) -> Path:
    """Write ``records`` (from :func:`segment_records`) as JSON (:func:`segments_json_obj`),
    atomically. Returns ``path``."""
    return atomic_write_text(path, json.dumps(segments_json_obj(records, fps), indent=2) + "\n")


# --------------------------------------------------------------------------- folders


class PredictionSet(NamedTuple):
    """Predictions of a folder with their ground truth, in video-name order."""

    names: list[str]  # video names (file stems)
    gts: list[np.ndarray]  # (T_i,) int64 class ids
    preds: list[np.ndarray]  # (T_i,) int64 class ids


def read_prediction_dir(
    pred_dir: str | Path,
    gt_dir: str | Path,
    label_map: LabelMap,
    videos: Optional[Sequence[str]] = None,
    allow_missing: bool = False,
) -> PredictionSet:
    """The ``<video>.txt`` predictions of ``pred_dir`` with ``gt_dir/<video>.txt``.

    Args:
        pred_dir: folder of MS-TCN prediction files (other files are ignored).
        gt_dir: a ``groundTruth`` folder (one class name per line).
        label_map: the classes of both.
        videos: the videos to score (e.g. a split bundle's); None = every ground-truth file of
            ``gt_dir``. Predictions of other videos are then ignored.
        allow_missing: score the videos that have a prediction and warn about the others,
            instead of an error.

    Raises:
        DataError: a missing folder, no prediction files, a video to score without a
        prediction (unless ``allow_missing``; the message lists the missing files), a
        prediction without ground truth, a prediction whose length differs from its ground
        truth, or any bad file content.
    """
    from .data.layout import read_labels  # imports torch: only where folders are scored

    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for folder, what in ((pred_dir, "prediction"), (gt_dir, "ground-truth")):
        if not folder.is_dir():
            raise DataError(f"{what} folder {folder} does not exist")
    predicted = {p.stem: p for p in sorted(pred_dir.glob("*.txt")) if p.is_file()}
    if not predicted:
        raise DataError(f"{pred_dir} holds no prediction files; expected <video>.txt files")
    if videos is None:
        for name, path in predicted.items():
            if not (gt_dir / path.name).is_file():
                raise DataError(
                    f"video {name!r}: no ground truth for {path}; expected the file "
                    f"{gt_dir / path.name}"
                )
        expected = sorted(p.stem for p in gt_dir.glob("*.txt") if p.is_file())
    else:
        expected = sorted(dict.fromkeys(videos))
    missing = [v for v in expected if v not in predicted]
    if missing:
        shown = ", ".join(str(pred_dir / f"{v}.txt") for v in missing[:_MISSING_SHOWN])
        more = f" and {len(missing) - _MISSING_SHOWN} more" if len(missing) > _MISSING_SHOWN else ""
        scope = "listed in --split" if videos is not None else f"with ground truth in {gt_dir}"
        if not allow_missing:
            raise DataError(
                f"{len(missing)} of {len(expected)} videos {scope} have no prediction: missing "
                f"{shown}{more}; expected one <video>.txt per video (--split BUNDLE scores a "
                "split's videos only; --allow-missing scores the others)"
            )
        logger.warning("scoring %d of %d videos; no prediction for %s%s",
                       len(expected) - len(missing), len(expected), shown, more)
    out = PredictionSet([], [], [])
    for name in (v for v in expected if v in predicted):
        path, gt_path = predicted[name], gt_dir / f"{name}.txt"
        if not gt_path.is_file():
            raise DataError(
                f"video {name!r}: no ground truth for {path}; expected the file {gt_path}"
            )
        pred = read_prediction(path, label_map)
        gt = read_labels(gt_path, label_map)
        if pred.size != gt.size:
            raise DataError(
                f"video {name!r}: {path} has {pred.size} frames but {gt_path} has "
                f"{gt.size}; expected equal lengths"
            )
        out.names.append(name)
        out.gts.append(gt)
        out.preds.append(pred)
    if not out.names:
        raise DataError(f"{pred_dir} holds no prediction of the videos to score")
    logger.debug("read %d predictions from %s", len(out.names), pred_dir)
    return out
