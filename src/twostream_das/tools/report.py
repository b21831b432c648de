"""``report``: one self-contained HTML page to look at predictions, a run or a cross-validation.

The page is ``templates/report.html`` (styles and vanilla JS inline) with the data of this
module embedded as JSON; nothing is fetched from a network or a server. A video file given with
``--video`` is referenced by a path relative to the page (not embedded), so moving the page
with its videos keeps them playing.

Sources, read as the README documents them:

- a **prediction folder** (``predict --out``): ``<video>.txt`` (fused), ``streams/<s>/<video>.txt``
  (each stream), ``<video>_segments.json`` (confidence, uncertainty), ``<video>_probs.npy``,
  ``<video>_uncertainty.npy`` (per frame, when written), ``summary.json`` (classes, fps, the
  ``--labels`` folder);
- a **run folder** (``train --out`` after ``evaluate``): ``results.json``, ``selection.json``,
  ``split.json``, ``run.json`` (the dataset root for the ground truth and the class names) and
  ``predictions/``, read like a prediction folder;
- a **cv folder**: ``summary.json`` and its ``fold<k>_seed<s>/`` run folders.

The embedded object (:func:`report_data`)::

    {"title", "kind": "predictions" | "run" | "cv", "source", "version",
     "classes": [{"name", "color": "#rrggbb", "background": bool}],
     "videos": [{"id", "name", "fps", "num_frames", "video_src": str | None,
                 "tracks": [{"name", "runs": [[start, end, class id], ...]}],  # end exclusive
                 "curves": [{"name", "step", "values": [per step frames], "max"}],
                 "columns": ["confidence", "uncertainty"],   # the segment fields present
                 "segments": [{"label", "label_id", "start_frame", "end_frame", "start_s",
                               "end_s", "confidence", "uncertainty"}],
                 "scores": None | {track: {"acc", "edit", "f1@50"}},  # with ground truth
                 "errors": None | {"predicted": [[start, end, hit]], "missed": [[start, end]],
                                   "wrong": [[start, end]]}}],  # IoU 0.5, report_analysis
     "review": [{"rank", "video" (an id), "label", "start_frame", "end_frame", "start_s",
                 "end_s", "score", "confidence", "uncertainty"}],  # review.csv or computed;
     "review_total": rows in the queue (the page embeds the first REVIEW_ROWS),
     "training": [{"run", "epochs", "series": {"loss", "val_score"}, "selected_epoch"}],
     "metrics": None | {"streams", "rows": [{"run", "stream", "values"}], "mean_std",
                        "selection": [{"run", "epoch", "fusion_weights", "postprocess"}],
                        "uncertainty": [{"run", "samples", "sampler", "steps", "views",
                                         <results.json's
                                         "uncertainty" entries: AUROC, ECE>}],
                        "per_class_f1": [{"class", "f1": {"f1@10", ...} | None}] | None,
                        "confusion": [[frames]] | None, "num_videos",
                        "per_stream_class": [{"class", "frames", "f1": {track}, "recall":
                                              {track}}] | None,
                        "fusion_help": [{"stream", "helped", "hurt", "frames"}] | None}}
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import numpy as np

from .._version import __version__
from ..atomic import atomic_write_text
from ..choices import FusionWeights, PostprocessChoice
from ..errors import ConfigError, DataError
from ..metrics import (
    DEFAULT_BACKGROUND,
    METRIC_KEYS,
    confusion_matrix,
    per_class_f1,
    segment_bounds,
)
from ..outputs import (
    STREAMS_DIR,
    read_prediction,
    read_prediction_names,
    segment_records,
    segments_json_obj,
)
from ..runs import RunDir, read_json, run_name
from .report_analysis import (
    REVIEW_ROWS,
    error_track,
    fusion_help,
    per_stream_class,
    review_queue,
    training_curves,
    video_scores,
)
from .viz import class_colors

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".webm", ".ogv", ".ogg", ".mov", ".m4v", ".mkv")
"""Files a ``--video`` folder contributes (what HTML5 players commonly play)."""
SEGMENT_COLUMNS: tuple[str, ...] = ("confidence", "uncertainty")
"""Optional numeric segment fields shown in the table when a folder has them."""
UNCERTAINTY_SUFFIX = "_uncertainty.npy"
CURVE_POINTS = 2000
"""Most values a curve embeds per video (longer videos are binned, see :func:`curve_points`)."""
TEMPLATE = "report.html"
_DATA_MARK, _TITLE_MARK = "/*REPORT_DATA*/", "<!--REPORT_TITLE-->"
GENERATOR = '<meta name="generator" content="twostream_das report">'
"""Marks a page as this command's, so rewriting it is not overwriting a user's file."""


@dataclass
class _Videos:
    """Per-video entries and the frame labels that metrics are computed from."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    gts: list[np.ndarray] = field(default_factory=list)  # (T,) class ids, videos with labels
    preds: list[np.ndarray] = field(default_factory=list)  # (T,) fused class ids, same videos
    streams: list[dict[str, np.ndarray]] = field(default_factory=list)  # same videos: (T,) each


def write_report(
    source: str | Path,
    out: str | Path,
    videos: Sequence[str | Path] = (),
    labels_dir: Optional[str | Path] = None,
) -> Path:
    """Write the report of ``source`` (prediction, run or cv folder) to ``out`` atomically.

    Raises:
        DataError: as :func:`report_data`, or ``out`` is a file that is not such a report (it is
        never overwritten).
    """
    out = Path(out)
    if out.exists() and (not out.is_file() or GENERATOR not in _head(out)):
        raise DataError(
            f"--out {out} exists and is not a twostream_das report; refusing to overwrite it. "
            "Pass another --out"
        )
    data = report_data(source, out.parent, videos, labels_dir)
    return atomic_write_text(out, render(data))


def _head(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.read(2048).decode("utf-8", "replace")


def render(data: Mapping[str, Any]) -> str:
    """The template with ``data`` embedded: JSON in a script element, ``<``, ``>`` and ``&``
    written as ``\\u`` escapes so no string can close the element; the title HTML-escaped."""
    text = resources.files(__package__).joinpath("templates", TEMPLATE).read_text("utf-8")
    payload = json.dumps(data, ensure_ascii=True, allow_nan=False)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace(_TITLE_MARK, html.escape(str(data["title"]))).replace(_DATA_MARK, payload)


def report_data(
    source: str | Path,
    page_dir: str | Path = ".",
    videos: Sequence[str | Path] = (),
    labels_dir: Optional[str | Path] = None,
) -> dict[str, Any]:
    """The object the page embeds (module docstring), for a page written into ``page_dir``.

    Raises:
        DataError: ``source`` is none of the three folders, a ``--video`` path does not exist,
        or a file in it is unreadable.
    """
    source = Path(source)
    files = video_files(videos)
    if (source / "summary.json").is_file() and "per_fold" in read_json(source / "summary.json"):
        kind, runs = "cv", _cv_runs(source)
    elif (source / "demo.json").is_file() and (source / "run" / "run.json").is_file():
        return report_data(source / "run", page_dir, videos, labels_dir)  # a demo: its run
    elif (source / "run.json").is_file():
        fold = read_json(source / "run.json").get("fold")
        kind, runs = "run", [(f"fold {fold}" if fold is not None else "", RunDir(source))]
    elif source.is_dir() and any(source.glob("*.txt")):
        kind, runs = "predictions", []
    else:
        raise DataError(
            f"{source} is not a prediction folder (<video>.txt files), a run folder (run.json) or "
            "a cv folder (summary.json with per_fold)"
        )
    if kind == "predictions":
        summary = _read_optional_json(source / "summary.json")
        classes = _class_names(summary.get("classes"), [source])
        background = tuple(summary.get("background", DEFAULT_BACKGROUND))
        gt_dir = labels_dir or summary.get("labels_dir")
        streams = list(_stored_weights(summary, source / "summary.json"))
        rates = {v.get("name"): v.get("fps") for v in summary.get("videos", [])
                 if isinstance(v, dict) and v.get("fps")}  # each video's own (predict records it)
        found = _read_videos(source, "", classes, summary.get("fps"), gt_dir, streams,
                             rates=rates, background=background)
        metrics = _metrics([], found, classes, background) if found.gts else None
        if metrics is not None:  # the scores predict --labels stored, per stream and fused
            scored = summary.get("metrics") or {}
            metrics["rows"] = [
                {"run": "all videos", "stream": k, "values": {m: v.get(m) for m in METRIC_KEYS}}
                for k, v in scored.items()
                if isinstance(v, dict)
            ]
    else:
        dataset = read_json(runs[0][1].run_json).get("config", {}).get("dataset", {})
        root = Path(dataset.get("root", ""))
        classes = _class_names(_mapping_names(root), [r.predictions for _, r in runs])
        background = tuple(dataset.get("background", DEFAULT_BACKGROUND))
        found = _Videos()
        for prefix, run in runs:
            gt_dir = labels_dir or root / "groundTruth"
            streams = list(_stored_weights(_read_optional_json(run.results_json), run.results_json))
            test = _read_optional_json(run.split_json).get("test")  # the videos evaluated
            part = _read_videos(
                run.predictions, prefix, classes, dataset.get("fps"), gt_dir, streams, test,
                background=background,
            )
            for name in ("entries", "gts", "preds", "streams"):
                getattr(found, name).extend(getattr(part, name))
        metrics = _metrics(runs, found, classes, background)
        if kind == "cv":
            metrics["mean_std"] = read_json(source / "summary.json").get("summary")
    _attach_videos(found.entries, files, page_dir)
    colors = class_colors(len(classes))[:, :3]
    folders = [("", source)] if kind == "predictions" else [(p, r.predictions) for p, r in runs]
    curves = [training_curves(label, run) for label, run in runs]
    queue = review_queue(folders, found.entries)
    return {
        "title": f"twostream_das report: {source.resolve().name}",
        "kind": kind,
        "source": _relative(source, page_dir),  # never an absolute path of this machine
        "version": __version__,
        "classes": [
            {"name": n, "color": _hex(c), "background": n in background}
            for n, c in zip(classes, colors, strict=True)
        ],
        "videos": found.entries,
        "metrics": metrics,
        "review": queue[:REVIEW_ROWS],  # the least certain first
        "review_total": len(queue),
        "training": [c for c in curves if c is not None],
    }


def _relative(path: Path, page_dir: str | Path) -> str:
    """``path`` relative to the page's folder (its name alone on another drive)."""
    try:
        return Path(os.path.relpath(path.resolve(), Path(page_dir).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.resolve().name


def video_files(paths: Sequence[str | Path]) -> dict[str, Path]:
    """Video name (file stem) -> file, from files and folders (:data:`VIDEO_SUFFIXES`)."""
    out: dict[str, Path] = {}
    for path in map(Path, paths):
        if path.is_dir():
            out.update({p.stem: p for p in sorted(path.iterdir()) if p.suffix in VIDEO_SUFFIXES})
        elif path.is_file():
            out[path.stem] = path
        else:
            raise DataError(f"--video {path} does not exist; expected a video file or a folder")
    return out


def _attach_videos(
    entries: list[dict[str, Any]], files: Mapping[str, Path], page_dir: str | Path
) -> None:
    """Give each video its file by name; one file and one video pair whatever their names."""
    if len(files) == 1 and len(entries) == 1:
        files = {entries[0]["name"]: next(iter(files.values()))}
    for entry in entries:
        if entry["name"] in files:
            entry["video_src"] = video_src(files[entry["name"]], page_dir)
    unused = sorted(set(files) - {e["name"] for e in entries})
    if unused:
        logger.warning("no predicted video named %s; those --video files are not shown", unused)


def video_src(video: Path, page_dir: str | Path) -> str:
    """The ``src`` of a video for a page in ``page_dir``: a relative URL where one exists (same
    drive), else a ``file://`` URL."""
    try:
        rel = os.path.relpath(video.resolve(), Path(page_dir).resolve())
    except ValueError:  # another drive on Windows
        return video.resolve().as_uri()
    return quote(Path(rel).as_posix())


def runs_of(labels: np.ndarray) -> list[list[int]]:
    """``[[start, end, label], ...]`` (end exclusive) of a (T,) class-id sequence."""
    seg_labels, starts, ends = segment_bounds(labels)
    return [[int(s), int(e), int(c)] for c, s, e in zip(seg_labels, starts, ends, strict=True)]


# --------------------------------------------------------------------------- reading folders


def _cv_runs(source: Path) -> list[tuple[str, RunDir]]:
    summary = read_json(source / "summary.json")
    runs = [
        (run_name(r["fold"], r["seed"]), RunDir(source / run_name(r["fold"], r["seed"])))
        for r in summary.get("runs", [])
    ]
    missing = [str(r.run_json) for _, r in runs if not r.run_json.is_file()]
    if not runs or missing:
        raise DataError(f"{source / 'summary.json'}: run folders missing: {missing or 'all'}")
    return runs


def _read_optional_json(path: Path) -> dict[str, Any]:
    return read_json(path) if path.is_file() else {}


def _mapping_names(root: Path) -> Optional[list[str]]:
    if not (root / "mapping.txt").is_file():
        return None
    from ..data.layout import read_mapping  # imports torch: only where a dataset is read

    return list(read_mapping(root / "mapping.txt").names)


def _class_names(known: Optional[Sequence[str]], folders: Sequence[Path]) -> list[str]:
    """The classes in id order: as stored, else the names found in the prediction files
    (older prediction folders do not list their classes)."""
    if known:
        return list(known)
    logger.warning("no class list found; taking the class names from the prediction files")
    seen: dict[str, None] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.txt")):
            seen.update(dict.fromkeys(read_prediction_names(path)))
    return list(seen)


def _read_videos(
    folder: Path,
    prefix: str,
    classes: Sequence[str],
    fps: Optional[float],
    gt_dir: Optional[str | Path],
    streams: Sequence[str] = (),
    only: Optional[Sequence[str]] = None,
    rates: Optional[Mapping[str, float]] = None,
    background: Sequence[str] = DEFAULT_BACKGROUND,
) -> _Videos:
    """Every ``<video>.txt`` of ``folder`` (of the videos ``only`` names, when given) with what
    lies beside it; the streams' tracks in the order of ``streams``, then any other stream
    folder by name. ``rates``: a video's own frames per second, where it differs from ``fps``."""
    from ..data.layout import LabelMap, read_labels  # imports torch: only where labels are read

    label_map = LabelMap(tuple(classes), "the report's class list")
    bg_ids = [classes.index(b) for b in background if b in classes]
    fps = float(fps) if fps else None
    found = _Videos()
    paths = sorted(folder.glob("*.txt"))
    if only is not None:
        wanted = set(only)
        paths = [p for p in paths if p.stem in wanted]
        if len(paths) < len(only):
            logger.warning(
                "%s: %d of the %d test videos have no prediction; evaluate the run",
                folder,
                len(only) - len(paths),
                len(only),
            )
    default_fps = fps
    for path in paths:
        name = path.stem
        fps = float((rates or {}).get(name) or 0) or default_fps
        fused = read_prediction(path, label_map)
        tracks = []
        gt_path = Path(gt_dir) / f"{name}.txt" if gt_dir else None
        gt = None
        if gt_path is not None and gt_path.is_file():
            gt = read_labels(gt_path, label_map)
            if gt.size != fused.size:
                raise DataError(
                    f"{gt_path} has {gt.size} frames but {path} has {fused.size}; expected equal"
                )
            tracks.append({"name": "ground truth", "runs": runs_of(gt)})
        own: dict[str, np.ndarray] = {}
        for stream in _stream_names(folder, streams):
            stream_file = folder / STREAMS_DIR / stream / f"{name}.txt"
            if stream_file.is_file():
                own[stream] = read_prediction(stream_file, label_map)
                tracks.append({"name": stream, "runs": runs_of(own[stream])})
        tracks.append({"name": "fused", "runs": runs_of(fused)})
        scores, errors = None, None
        if gt is not None:
            found.gts.append(gt)
            found.preds.append(fused)
            found.streams.append(own)
            scores = video_scores(gt, {**own, "fused": fused}, bg_ids)
            errors = error_track(gt, fused, bg_ids)
        probs = _optional_npy(folder / f"{name}_probs.npy", (len(classes), fused.size))
        curves = []
        if probs is not None:  # the probability of the fused label, frame by frame
            confidence = probs[fused, np.arange(fused.size)]
            curves.append({"name": "confidence", **curve_points(confidence, np.min), "max": 1.0})
        uncertainty = _optional_npy(folder / f"{name}{UNCERTAINTY_SUFFIX}", (fused.size,))
        if uncertainty is not None:
            top = max(float(uncertainty.max()), 1e-9)
            curves.append({"name": "uncertainty", **curve_points(uncertainty, np.max), "max": top})
        segments = _segments(folder / f"{name}_segments.json", fused, probs, classes, fps)
        columns = [c for c in SEGMENT_COLUMNS if any(s.get(c) is not None for s in segments)]
        found.entries.append(
            {
                "id": f"{prefix}: {name}" if prefix else name,
                "name": name,
                "fps": fps,
                "num_frames": int(fused.size),
                "video_src": None,
                "tracks": tracks,
                "curves": curves,
                "columns": columns,
                "segments": segments,
                "scores": scores,  # track -> acc, edit, f1@50 (with ground truth)
                "errors": errors,  # the fused segments' TP/FP at IoU 0.5, missed, wrong frames
            }
        )
    return found


def _stream_names(folder: Path, streams: Sequence[str]) -> list[str]:
    found = sorted(p.name for p in (folder / STREAMS_DIR).glob("*") if p.is_dir())
    return [s for s in streams if s in found] + [s for s in found if s not in streams]


def _optional_npy(path: Path, shape: tuple[int, ...]) -> Optional[np.ndarray]:
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}; expected a .npy array") from None
    if arr.shape != shape or not np.isfinite(arr).all():
        raise DataError(f"{path} has shape {arr.shape}; expected {shape} of finite numbers")
    return arr.astype(np.float64)


def curve_points(values: np.ndarray, worst: Any, points: int = CURVE_POINTS) -> dict[str, Any]:
    """A per-frame series ``(T,)`` as at most ``points`` values, each the ``worst``
    (``np.min`` for confidence, ``np.max`` for uncertainty) of ``step`` consecutive frames, so
    that no doubtful frame vanishes from a long video's curve.

    Returns:
        ``{"step": frames per value, "values": [...]}`` (4 decimals).
    """
    step = max(1, -(-len(values) // points))
    padded = np.pad(values, (0, -len(values) % step), mode="edge")  # the last bin repeats
    binned = worst(padded.reshape(-1, step), axis=1)
    return {"step": step, "values": [round(float(v), 4) for v in binned]}


def _segments(
    path: Path,
    fused: np.ndarray,
    probs: Optional[np.ndarray],
    classes: Sequence[str],
    fps: Optional[float],
) -> list[dict[str, Any]]:
    """The segments file's records when there is one, else the fused labels' segments."""
    records = _read_optional_json(path).get("segments")
    if records is None:
        records = segments_json_obj(segment_records(fused, probs, classes, fps), fps)["segments"]
    keys = ("label", "label_id", "start_frame", "end_frame", "start_s", "end_s", *SEGMENT_COLUMNS)
    return [{k: r.get(k) for k in keys} for r in records]


# --------------------------------------------------------------------------- metrics


def results_sampling(results: Mapping[str, Any]) -> dict[str, Any]:
    """How a results.json was sampled: ``{"samples", "sampler", "steps", "views"}``; an older
    file, written before the sampler and views were recorded, was DDIM over all views and
    named its steps ``ddim_steps``."""
    return {
        "samples": results.get("samples"),
        "sampler": results.get("sampler", "ddim"),
        "steps": results.get("steps", results.get("ddim_steps")),
        "views": results.get("views", "all"),
    }


def _metrics(
    runs: Sequence[tuple[str, RunDir]],
    found: _Videos,
    classes: Sequence[str],
    background: Sequence[str],
) -> dict[str, Any]:
    """Scores as stored by ``evaluate``, and per-class F1 and the confusion matrix of the
    fused predictions over every video with ground truth (TP/FP/FN and frames pooled)."""
    rows, selection, uncertainty, streams = [], [], [], []
    for label, run in runs:
        results = _read_optional_json(run.results_json)
        weights = _stored_weights(results, run.results_json)
        streams = list(weights) or streams
        for stream in [*weights, "fused"]:
            if isinstance(results.get(stream), dict):
                values = {k: results[stream].get(k) for k in METRIC_KEYS}
                rows.append({"run": label, "stream": stream, "values": values})
        best = _read_optional_json(run.selection_json).get("best", {})
        post_from = (results, run.results_json) if "postprocess" in results else (
            best, run.selection_json)
        selection.append(
            {
                "run": label,
                "epoch": results.get("epoch", best.get("epoch")),
                "fusion_weights": weights or _stored_weights(best, run.selection_json) or None,
                "postprocess": _stored_postprocess(*post_from),
            }
        )
        found_uncertainty = results.get("uncertainty")  # evaluate's AUROC and ECE, when stored
        if isinstance(found_uncertainty, dict):
            sampling = results_sampling(results)
            uncertainty.append({"run": label, **sampling, **found_uncertainty})
    per_class = confusion = stream_class = helped = None
    if found.gts:
        bg_ids = [classes.index(b) for b in background if b in classes]
        common = [s for s in found.streams[0] if all(s in v for v in found.streams)]
        tracks = {s: [v[s] for v in found.streams] for s in common}
        stream_class = per_stream_class(found.gts, {**tracks, "fused": found.preds}, classes,
                                        bg_ids)
        helped = fusion_help(found.gts, tracks, found.preds)
        ids = [i for i, _ in enumerate(classes)]
        f1 = per_class_f1(
            found.gts, found.preds, ids, [classes.index(b) for b in background if b in classes]
        )
        per_class = [{"class": classes[i], "f1": v} for i, v in f1.items()]
        confusion = confusion_matrix(found.gts, found.preds, len(classes)).tolist()
    return {
        "streams": streams,
        "rows": rows,
        "mean_std": None,
        "selection": selection,
        "uncertainty": uncertainty,
        "per_class_f1": per_class,
        "confusion": confusion,
        "num_videos": len(found.gts),
        "per_stream_class": stream_class,  # class -> each track's F1@50 and frame recall
        "fusion_help": helped,  # stream -> frames the fusion put right / wrong
    }


def _stored_weights(stored: Mapping[str, Any], path: Path) -> dict[str, float]:
    """The fusion weights a results / summary / selection file stores ({} when none), checked
    (:class:`~twostream_das.choices.FusionWeights`)."""
    if not stored.get("fusion_weights"):
        return {}
    try:
        return FusionWeights.from_dict(stored["fusion_weights"]).to_dict()
    except ConfigError as err:
        raise DataError(f"{path}: {err}") from None


def _stored_postprocess(stored: Mapping[str, Any], path: Path) -> Optional[dict[str, Any]]:
    """The post-processing a results / selection file stores (None when none), checked
    (:class:`~twostream_das.choices.PostprocessChoice`)."""
    if stored.get("postprocess") is None:
        return None
    try:
        return PostprocessChoice.from_dict(stored["postprocess"]).to_dict()
    except ConfigError as err:
        raise DataError(f"{path}: {err}") from None


def _hex(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{round(float(c) * 255):02x}" for c in rgb)
