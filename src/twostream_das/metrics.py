"""Frame accuracy, segmental Edit and F1@{10,25,50}, exactly as the field computes them.

The definitions follow Lea et al.'s ``metrics.py`` (TemporalConvolutionalNetworks, CVPR 2017)
and the ``eval.py`` that MS-TCN, ASFormer and DiffAct copied from it:

- **Segments** are maximal runs of one label, half-open ``[start, end)`` frame ranges.
- **Acc**: percentage of frames whose predicted label equals the ground truth; background
  frames count like any other.
- **Edit**: ``(1 - Levenshtein(P, Y) / max(|P|, |Y|)) * 100`` on the sequences of segment labels
  after the segments of background classes are dropped (dropping can leave two neighbouring
  segments of one label: they stay two, as in the reference code). Both empty gives 100 (the
  reference divides 0 by 0 there).
- **F1@k**: background segments are dropped on both sides. Each predicted segment, in order,
  takes the ground-truth segment of the same label with the highest IoU (the first on ties),
  *whether or not that segment is already matched*; it is a true positive if that IoU is at least
  ``k`` and the segment was not matched yet, else a false positive. Unmatched ground-truth
  segments are false negatives. This is the reference rule: a predicted segment whose best match
  is taken does not fall back to its second best. Undefined precision/recall/F1 (0/0) counts as
  0, as the reference code's ``nan_to_num`` does.

Two ways to aggregate a split (:class:`~twostream_das.config.Average`):

- ``pooled`` (MS-TCN / ASFormer / DiffAct): correct frames and TP/FP/FN summed over the videos,
  then Acc and F1 from the sums; Edit averaged over videos.
- ``per-video`` (Lea et al. 2017): every metric computed per video, then averaged over videos.

A difference from ASFormer's and DiffAct's copy of ``eval.py``: there the last segment of a video
ends at ``T - 1`` instead of ``T`` (one frame short, an off-by-one that MS-TCN later fixed); here,
as in Lea's code, it ends at ``T``. It can only change F1 when the last segment's IoU sits within
one frame of a threshold.

Labels may be integer ids or strings; background classes are given in the same kind.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .config import Average, DatasetConfig
from .errors import DataError

logger = logging.getLogger(__name__)

OVERLAPS: tuple[float, ...] = (0.10, 0.25, 0.50)
"""IoU thresholds of F1@{10,25,50}."""

F1_KEYS: tuple[str, ...] = tuple(f"f1@{round(k * 100)}" for k in OVERLAPS)
METRIC_KEYS: tuple[str, ...] = ("acc", "edit", *F1_KEYS)
"""Keys of :func:`score`'s result, all in percent."""

DEFAULT_BACKGROUND: tuple[str, ...] = tuple(DatasetConfig().background)
"""Background classes when none are given: ``dataset.background``'s default (GTEA's)."""


class Segment(NamedTuple):
    """One maximal run of a label: frames ``start <= t < end``."""

    label: Hashable
    start: int
    end: int


class Counts(NamedTuple):
    """Segment true positives, false positives and false negatives at one IoU threshold."""

    tp: int
    fp: int
    fn: int

    def __add__(self, other: object) -> Counts:  # type: ignore[override]
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


@dataclass(frozen=True)
class VideoScores:
    """The raw scores of one video, from which a split is aggregated.

    Attributes:
        num_frames: T.
        correct: frames whose label is right.
        edit: Edit score in percent.
        counts: TP/FP/FN per threshold of :data:`OVERLAPS`, same order.
    """

    num_frames: int
    correct: int
    edit: float
    counts: tuple[Counts, ...]

    @property
    def acc(self) -> float:
        return 100.0 * self.correct / self.num_frames

    @property
    def f1(self) -> tuple[float, ...]:
        return tuple(f1_score(c) for c in self.counts)


@dataclass(frozen=True)
class SplitScores:
    """Metrics of a set of videos, in percent, and how they were aggregated."""

    acc: float
    edit: float
    f1: tuple[float, ...]  # one per threshold of OVERLAPS
    num_videos: int
    average: Average

    def as_dict(self) -> dict[str, float]:
        """``{"acc", "edit", "f1@10", "f1@25", "f1@50"}`` in percent."""
        return {"acc": self.acc, "edit": self.edit, **dict(zip(F1_KEYS, self.f1, strict=True))}


# --------------------------------------------------------------------------- segments


def _as_labels(labels: ArrayLike, what: str = "labels") -> np.ndarray:
    """A 1-d array of frame labels; DataError for any other shape."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise DataError(f"{what} have shape {arr.shape}; expected one label per frame, (T,)")
    return arr


def segment_bounds(labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments of a label sequence as arrays.

    Args:
        labels: (T,) frame labels (ints or strings).

    Returns:
        ``(seg_labels (S,), starts (S,), ends (S,))``, ``ends`` exclusive; all empty when T = 0.
    """
    arr = _as_labels(labels)
    if arr.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return arr[:0], empty, empty.copy()
    change = np.flatnonzero(arr[1:] != arr[:-1]) + 1  # first frame of every segment but the first
    starts = np.concatenate(([0], change)).astype(np.int64)
    ends = np.concatenate((change, [arr.size])).astype(np.int64)
    return arr[starts], starts, ends


def segments(labels: ArrayLike) -> list[Segment]:
    """Maximal runs of equal labels, in order.

    Args:
        labels: (T,) frame labels.

    Returns:
        One :class:`Segment` ``(label, start, end)`` per run, ``end`` exclusive; ``[]`` when T = 0.
    """
    seg_labels, starts, ends = segment_bounds(labels)
    return [
        Segment(lab, int(s), int(e))
        for lab, s, e in zip(seg_labels.tolist(), starts, ends, strict=True)
    ]


def _foreground(labels: ArrayLike, background: Iterable[Hashable]):
    """Segment arrays with the segments of background classes removed."""
    seg_labels, starts, ends = segment_bounds(labels)
    bg = set(background)
    keep = np.fromiter((lab not in bg for lab in seg_labels.tolist()), bool, len(seg_labels))
    return seg_labels[keep], starts[keep], ends[keep]


# --------------------------------------------------------------------------- per video


def frame_accuracy(gt: ArrayLike, pred: ArrayLike) -> float:
    """Percentage of frames with the right label (background included).

    Args:
        gt, pred: (T,) frame labels, T >= 1.
    """
    gt_arr, pred_arr = _check_pair(gt, pred)
    return 100.0 * float(np.count_nonzero(gt_arr == pred_arr)) / gt_arr.size


def levenshtein(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1) between two sequences.

    One numpy pass per element of ``a``: a row of the dynamic programme is the minimum of
    deletion and substitution from the previous row, then insertions are a running minimum
    of ``row[j] - j`` (``row[j] = min_k<=j tmp[k] + (j - k)``).
    """
    a_list, b_list = list(a), list(b)
    if not a_list or not b_list:
        return max(len(a_list), len(b_list))
    b_arr = np.empty(len(b_list), dtype=object)
    b_arr[:] = b_list
    cols = np.arange(len(b_list) + 1)
    row = cols.copy()  # distances from the empty prefix of a
    for i, item in enumerate(a_list, start=1):
        cost = (b_arr != item).astype(np.int64)  # substitution cost per column
        tmp = np.empty_like(row)
        tmp[0] = i
        tmp[1:] = np.minimum(row[1:] + 1, row[:-1] + cost)  # deletion, substitution
        row = np.minimum.accumulate(tmp - cols) + cols  # insertion
    return int(row[-1])


def edit_score(
    gt: ArrayLike, pred: ArrayLike, background: Iterable[Hashable] = DEFAULT_BACKGROUND
) -> float:
    """Segmental edit score in percent (100 when neither has a non-background segment).

    Args:
        gt, pred: (T,) frame labels (lengths may differ: only the segment orders matter).
        background: classes whose segments are dropped first.
    """
    bg = tuple(background)
    pred_labels = _foreground(pred, bg)[0].tolist()
    gt_labels = _foreground(gt, bg)[0].tolist()
    longest = max(len(pred_labels), len(gt_labels))
    if longest == 0:
        return 100.0
    return (1.0 - levenshtein(pred_labels, gt_labels) / longest) * 100.0


def segment_counts(
    gt: ArrayLike,
    pred: ArrayLike,
    overlap: float,
    background: Iterable[Hashable] = DEFAULT_BACKGROUND,
) -> Counts:
    """TP/FP/FN of the predicted segments at IoU threshold ``overlap`` (module docstring rule).

    Args:
        gt, pred: (T,) frame labels.
        overlap: IoU threshold in (0, 1]; a hit needs IoU >= overlap.
        background: classes whose segments are ignored on both sides.
    """
    p_lab, hits, y_lab, matched = _segment_hits(gt, pred, overlap, tuple(background))
    tp = int(hits.sum())
    return Counts(tp, int(len(p_lab) - tp), int(len(y_lab) - matched.sum()))


def _segment_hits(
    gt: ArrayLike, pred: ArrayLike, overlap: float, background: tuple[Hashable, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The matching of :func:`segment_counts`, segment by segment.

    Returns:
        ``(pred_labels (S_p,), hit (S_p,) bool, gt_labels (S_g,), matched (S_g,) bool)`` over the
        foreground segments: which predicted segments are true positives, and which
        ground-truth segments they matched.
    """
    p_lab, p_start, p_end = _foreground(pred, background)
    y_lab, y_start, y_end = _foreground(gt, background)
    matched = np.zeros(len(y_lab), dtype=bool)
    hits = np.zeros(len(p_lab), dtype=bool)
    for i, (label, start, end) in enumerate(zip(p_lab.tolist(), p_start, p_end, strict=True)):
        same = y_lab == label  # (S_gt,) same-label ground-truth segments
        if not same.any():
            continue
        inter = np.minimum(end, y_end) - np.maximum(start, y_start)
        union = np.maximum(end, y_end) - np.minimum(start, y_start)
        iou = np.where(same, inter / union, 0.0)  # disjoint same-label segments give <= 0
        best = int(np.argmax(iou))
        if iou[best] >= overlap and not matched[best]:
            hits[i] = matched[best] = True
    return p_lab, hits, y_lab, matched


def class_segment_counts(
    gt: ArrayLike,
    pred: ArrayLike,
    overlap: float,
    background: Iterable[Hashable] = DEFAULT_BACKGROUND,
) -> dict[Hashable, Counts]:
    """:func:`segment_counts` split by class: TP/FP/FN of each foreground label's segments.

    A segment is only ever matched with segments of its own label, so the classes' counts add
    up to :func:`segment_counts`. Labels that occur on neither side are absent.
    """
    p_lab, hits, y_lab, matched = _segment_hits(gt, pred, overlap, tuple(background))
    out = {}
    for label in dict.fromkeys([*p_lab.tolist(), *y_lab.tolist()]):
        mine, theirs = p_lab == label, y_lab == label
        tp = int(hits[mine].sum())
        out[label] = Counts(tp, int(mine.sum()) - tp, int((~matched[theirs]).sum()))
    return out


def per_class_f1(
    gts: Sequence[ArrayLike],
    preds: Sequence[ArrayLike],
    classes: Sequence[Hashable],
    background: Iterable[Hashable] = DEFAULT_BACKGROUND,
    overlaps: Sequence[float] = OVERLAPS,
) -> dict[Hashable, dict[str, float] | None]:
    """Segmental F1@k of each class, TP/FP/FN pooled over the videos, in percent.

    Args:
        gts, preds: per-video (T_i,) labels of the same kind as ``classes``, equal lengths.
        classes: every class, in the order of the result.
        background: classes without F1 (None in the result), as for :func:`score`.
        overlaps: IoU thresholds (keys ``f1@<100 k>``).

    Returns:
        class -> ``{"f1@10": ..., ...}``; a class absent from both sides gets 0 (no true
        positive, as :func:`f1_score` counts 0/0).
    """
    bg = tuple(background)
    totals = {c: [Counts(0, 0, 0)] * len(overlaps) for c in classes}
    for gt, pred in zip(gts, preds, strict=True):
        gt_arr, pred_arr = _check_pair(gt, pred)
        for i, k in enumerate(overlaps):
            for label, counts in class_segment_counts(gt_arr, pred_arr, k, bg).items():
                if label not in totals:
                    raise DataError(f"label {label!r} is not one of the classes {list(classes)}")
                totals[label][i] = totals[label][i] + counts
    keys = [f"f1@{round(k * 100)}" for k in overlaps]
    return {
        c: None if c in bg else {key: f1_score(n) for key, n in zip(keys, totals[c], strict=True)}
        for c in classes
    }


def confusion_matrix(
    gts: Sequence[ArrayLike], preds: Sequence[ArrayLike], num_classes: int
) -> np.ndarray:
    """Frames per (ground-truth class, predicted class), summed over the videos.

    Args:
        gts, preds: per-video (T_i,) class ids in ``0..num_classes - 1``, equal lengths.

    Returns:
        (C, C) int64: row = ground truth, column = prediction; the diagonal holds the correct
        frames, the total is the number of frames.
    """
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    for gt, pred in zip(gts, preds, strict=True):
        gt_arr, pred_arr = _check_pair(gt, pred)
        ids = np.concatenate([gt_arr, pred_arr])
        if ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= num_classes:
            raise DataError(f"labels must be class ids 0..{num_classes - 1}; got {ids.dtype}")
        np.add.at(out, (gt_arr, pred_arr), 1)
    return out


def f1_score(counts: Counts) -> float:
    """F1 in percent from TP/FP/FN; 0 wherever precision, recall or F1 would be 0/0."""
    tp, fp, fn = counts
    if tp == 0:
        return 0.0  # precision and recall are 0 or undefined: the reference gives 0
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    return 100.0 * 2.0 * precision * recall / (precision + recall)


def score_video(
    gt: ArrayLike,
    pred: ArrayLike,
    background: Iterable[Hashable] = DEFAULT_BACKGROUND,
    overlaps: Sequence[float] = OVERLAPS,
) -> VideoScores:
    """Everything one video contributes to a split's metrics.

    Args:
        gt, pred: (T,) frame labels of equal length T >= 1.
        background: classes dropped for Edit and F1.
        overlaps: IoU thresholds.
    """
    gt_arr, pred_arr = _check_pair(gt, pred)
    bg = tuple(background)
    return VideoScores(
        num_frames=int(gt_arr.size),
        correct=int(np.count_nonzero(gt_arr == pred_arr)),
        edit=edit_score(gt_arr, pred_arr, bg),
        counts=tuple(segment_counts(gt_arr, pred_arr, k, bg) for k in overlaps),
    )


def _check_pair(gt: ArrayLike, pred: ArrayLike, name: str = "video") -> tuple[np.ndarray, ...]:
    gt_arr = _as_labels(gt, f"{name}: ground-truth labels")
    pred_arr = _as_labels(pred, f"{name}: predicted labels")
    if gt_arr.size != pred_arr.size:
        raise DataError(
            f"{name}: prediction has {pred_arr.size} frames, ground truth {gt_arr.size}; "
            "expected equal lengths"
        )
    if gt_arr.size == 0:
        raise DataError(f"{name}: no frames; expected at least one labelled frame")
    if _is_text(gt_arr) != _is_text(pred_arr):
        raise DataError(
            f"{name}: ground truth holds {gt_arr.dtype} labels, prediction {pred_arr.dtype}; "
            "expected both class ids or both class names"
        )
    return gt_arr, pred_arr


def _is_text(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "USO" and (arr.dtype.kind != "O" or isinstance(arr[0], str))


# --------------------------------------------------------------------------- splits


def aggregate(
    videos: Sequence[VideoScores], average: Average | str = Average.POOLED
) -> SplitScores:
    """Acc, Edit and F1 of a split from its videos' raw scores.

    Args:
        videos: one :class:`VideoScores` per video (at least one).
        average: ``pooled`` (frames and TP/FP/FN summed, Edit per video) or ``per-video``.
    """
    average = Average(average)
    if not videos:
        raise DataError("no videos to score; expected at least one")
    edit = float(np.mean([v.edit for v in videos]))
    if average is Average.PER_VIDEO:
        acc = float(np.mean([v.acc for v in videos]))
        f1 = tuple(float(x) for x in np.mean([v.f1 for v in videos], axis=0))
    else:
        acc = 100.0 * sum(v.correct for v in videos) / sum(v.num_frames for v in videos)
        totals = [sum((v.counts[i] for v in videos), Counts(0, 0, 0)) for i in range(len(OVERLAPS))]
        f1 = tuple(f1_score(c) for c in totals)
    return SplitScores(acc, edit, f1, len(videos), average)


def evaluate(
    gts: Sequence[ArrayLike],
    preds: Sequence[ArrayLike],
    background: Iterable[Hashable] = DEFAULT_BACKGROUND,
    average: Average | str = Average.POOLED,
    names: Sequence[str] | None = None,
) -> SplitScores:
    """Score a split: the named-result form of :func:`score`.

    Args:
        gts, preds: per-video (T_i,) label arrays, in the same order and of equal lengths.
        background: background classes (ids or names, like the labels).
        average: how to aggregate over videos (:class:`~twostream_das.config.Average`).
        names: video names, used in error messages only.

    Raises:
        DataError: different numbers of videos, a length mismatch, an empty video.
    """
    if len(gts) != len(preds):
        raise DataError(
            f"{len(preds)} predictions for {len(gts)} ground-truth videos; expected one each"
        )
    names = list(names) if names is not None else [f"video {i}" for i in range(len(gts))]
    if len(names) != len(gts):
        raise ValueError(f"{len(names)} names for {len(gts)} videos; expected one each")
    bg = tuple(background)
    videos = []
    for name, gt, pred in zip(names, gts, preds, strict=True):
        gt_arr, pred_arr = _check_pair(gt, pred, name)
        videos.append(score_video(gt_arr, pred_arr, bg))
    result = aggregate(videos, average)
    logger.debug("scored %d videos (%s): %s", len(videos), result.average.value, result.as_dict())
    return result


def score(
    gts: Sequence[ArrayLike],
    preds: Sequence[ArrayLike],
    background: Iterable[Hashable] = DEFAULT_BACKGROUND,
    average: Average | str = Average.POOLED,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Acc, Edit, F1@{10,25,50} of a split in percent.

    Args:
        gts, preds: per-video (T_i,) label arrays (ids or names), same order, equal lengths.
        background: background classes, dropped for Edit and F1 (default ``("background",)``).
        average: ``pooled`` (default) or ``per-video``.
        names: video names for error messages.

    Returns:
        ``{"acc", "edit", "f1@10", "f1@25", "f1@50"}`` -> float.
    """
    return evaluate(gts, preds, background, average, names).as_dict()
