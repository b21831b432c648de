"""What the report computes to find the errors: per-video scores, the segment-level error track,
per-stream per-class scores, where the fusion helped, the review queue and training curves.

Inputs are class-id label arrays ``(T,)`` (ground truth, each stream, fused) and run folders;
outputs are plain JSON-ready values that :mod:`.report` embeds.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..metrics import _foreground, _segment_hits, edit_score, per_class_f1, segment_counts
from ..metrics import f1_score as f1_of
from ..runs import RunDir, read_json

ERROR_IOU = 0.5
"""The IoU at which the error track calls a predicted segment a true positive (F1@50's)."""
VIDEO_SCORE_KEYS: tuple[str, ...] = ("acc", "edit", "f1@50")
REVIEW_ROWS = 500
"""Rows of the review queue the page embeds (the least certain first)."""
CURVE_KEYS: tuple[str, ...] = ("loss", "val_score")
"""The training curves drawn: the training loss and the validation score selection used."""


def video_scores(gt: np.ndarray, tracks: Mapping[str, np.ndarray],
                 background: Sequence[int]) -> dict[str, dict[str, float]]:
    """Per track (each stream, ``fused``): ``{"acc", "edit", "f1@50"}`` in percent for one video."""
    out = {}
    for name, pred in tracks.items():
        counts = segment_counts(gt, pred, ERROR_IOU, background)
        out[name] = {
            "acc": round(100.0 * float(np.mean(gt == pred)), 2),
            "edit": round(edit_score(gt, pred, background), 2),
            "f1@50": round(f1_of(counts), 2),
        }
    return out


def error_track(gt: np.ndarray, pred: np.ndarray,
                background: Sequence[int]) -> dict[str, list[list[int]]]:
    """Segment-level errors of ``pred`` at IoU :data:`ERROR_IOU`, the F1@50 matching.

    Returns:
        ``{"predicted": [[start, end, hit]], "missed": [[start, end]], "wrong": [[start,
        end]]}``: every foreground predicted segment (hit 1 = true positive, 0 = false
        positive), the ground-truth segments no prediction matched (false negatives), and the
        runs of frames whose label is wrong. Ends are exclusive.
    """
    bg = tuple(background)
    _, hits, _, matched = _segment_hits(gt, pred, ERROR_IOU, bg)
    _, p_start, p_end = _foreground(pred, bg)
    _, g_start, g_end = _foreground(gt, bg)
    wrong = np.concatenate(([False], gt != pred, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(wrong))  # starts and ends of the wrong runs, alternating
    return {
        "predicted": [[int(s), int(e), int(h)] for s, e, h in zip(p_start, p_end, hits,
                                                                  strict=True)],
        "missed": [[int(s), int(e)] for s, e, m in zip(g_start, g_end, matched, strict=True)
                   if not m],
        "wrong": [[int(s), int(e)] for s, e in zip(edges[::2], edges[1::2], strict=True)],
    }


def fusion_help(gts: Sequence[np.ndarray], streams: Mapping[str, Sequence[np.ndarray]],
                fused: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """Per stream, over every frame with ground truth: ``helped`` (the stream wrong, the fused
    label right), ``hurt`` (the stream right, the fused label wrong), and the frames."""
    out = []
    for name, preds in streams.items():
        helped = hurt = frames = 0
        for gt, own, both in zip(gts, preds, fused, strict=True):
            helped += int(np.count_nonzero((own != gt) & (both == gt)))
            hurt += int(np.count_nonzero((own == gt) & (both != gt)))
            frames += int(gt.size)
        out.append({"stream": name, "helped": helped, "hurt": hurt, "frames": frames})
    return out


def per_stream_class(gts: Sequence[np.ndarray], tracks: Mapping[str, Sequence[np.ndarray]],
                     classes: Sequence[str], background: Sequence[int]) -> list[dict[str, Any]]:
    """Per class: each track's F1@50 (segments pooled over the videos) and frame recall (the
    share of the class's frames labelled right), in percent; None for background's F1."""
    ids = list(range(len(classes)))
    f1 = {name: per_class_f1(gts, preds, ids, background, (ERROR_IOU,))
          for name, preds in tracks.items()}
    gt_all = np.concatenate(gts) if gts else np.zeros(0, np.int64)
    pred_all = {track: np.concatenate(preds) for track, preds in tracks.items()}
    rows = []
    for i, name in enumerate(classes):
        where = gt_all == i
        row: dict[str, Any] = {"class": name, "frames": int(where.sum()), "f1": {}, "recall": {}}
        for track in tracks:
            scores = f1[track][i]
            row["f1"][track] = None if scores is None else round(scores["f1@50"], 1)
            row["recall"][track] = (round(100.0 * float(np.mean(pred_all[track][where] == i)), 1)
                                    if where.any() else None)
        rows.append(row)
    return rows


def training_curves(label: str, run: RunDir) -> Optional[dict[str, Any]]:
    """A run's ``metrics.csv`` as ``{"run", "epochs", "series": {key: [value or None]},
    "selected_epoch"}`` (the epoch of ``best.pt``, from ``selection.json``); None without
    the file."""
    if not run.metrics_csv.is_file():
        return None
    with run.metrics_csv.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("epoch")]
    if not rows:
        return None
    series = {key: [_number(r.get(key)) for r in rows] for key in CURVE_KEYS if key in rows[0]}
    selected = None
    if run.selection_json.is_file():
        selected = read_json(run.selection_json).get("best", {}).get("epoch")
    return {"run": label, "epochs": [int(float(r["epoch"])) for r in rows], "series": series,
            "selected_epoch": selected}


def _number(text: Optional[str]) -> Optional[float]:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def review_queue(folders: Sequence[tuple[str, Path]],
                 entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The review queue: ``review.csv`` of a prediction folder as ``predict`` ranked it, else
    every segment of ``entries`` least certain first (mean uncertainty where there is one,
    else 1 - confidence; :func:`~twostream_das.workflows.prediction.review_rows`' rule).
    Each row names its video entry by ``id`` and its first and last frames."""
    by_name = {(e["id"].rpartition(": ")[0] if ": " in e["id"] else "", e["name"]): e
               for e in entries}
    rows: list[dict[str, Any]] = []
    for prefix, folder in folders:
        path = folder / "review.csv"
        if not path.is_file():
            continue
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                entry = by_name.get((prefix, row.get("video", "")))
                if entry is None:
                    continue
                start = _frame_at(entry, _number(row.get("start_s")))
                segment = next((s for s in entry["segments"] if s["start_frame"] == start), None)
                if segment is not None:
                    rows.append(_queue_row(entry, segment, _number(row.get("score"))))
    if not rows:
        for entry in entries:
            for seg in entry["segments"]:
                unc, conf = seg.get("uncertainty"), seg.get("confidence")
                score = unc if unc is not None else (1.0 - conf if conf is not None else None)
                rows.append(_queue_row(entry, seg, score))
        rows.sort(key=lambda r: (-(r["score"] if r["score"] is not None else -1), r["video"],
                                 r["start_frame"]))
    return [{"rank": i + 1, **r} for i, r in enumerate(rows)]


def _frame_at(entry: Mapping[str, Any], seconds: Optional[float]) -> Optional[int]:
    fps = entry.get("fps")
    if seconds is None or not fps:
        return None
    return int(round(seconds * fps))


def _queue_row(entry: Mapping[str, Any], seg: Mapping[str, Any],
               score: Optional[float]) -> dict[str, Any]:
    return {"video": entry["id"], "label": seg["label"], "label_id": seg.get("label_id"),
            "start_frame": seg["start_frame"], "end_frame": seg["end_frame"],
            "start_s": seg.get("start_s"), "end_s": seg.get("end_s"),
            "score": None if score is None else round(float(score), 4),
            "confidence": seg.get("confidence"), "uncertainty": seg.get("uncertainty")}
