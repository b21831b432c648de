"""Reading feature files and writing ``predict``'s files, for the ONNX runtime (numpy only).

The files and their bytes are those of :mod:`twostream_das.workflows.prediction` and
:mod:`twostream_das.outputs` (``tests/deploy/test_host.py`` compares them):

    <video>.txt, streams/<stream>/<video>.txt   MS-TCN prediction files
    <video>_segments.csv, <video>_segments.json  segments with seconds and confidence
    <video>_probs.npy                           fused probabilities (C, T) float32
    <video>_uncertainty.npy                     with K > 1 samples, (T,) float32
    <video>.png                                 only with plots (matplotlib)
    summary.json, review.csv
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ..errors import DataError
from .host import segment_bounds

if TYPE_CHECKING:
    from .bundle import Manifest
    from .runtime import Sampling, VideoResult

PREDICTION_HEADER = "### Frame level recognition: ###"
STREAMS_DIR = "streams"
UNCERTAINTY_SUFFIX = "_uncertainty.npy"
SUMMARY_JSON = "summary.json"
REVIEW_CSV = "review.csv"
SEGMENT_FIELDS = (
    "label", "label_id", "start_frame", "end_frame", "num_frames", "start_s", "end_s",
    "confidence", "uncertainty",
)  # fmt: skip
REVIEW_FIELDS = (
    "rank", "video", "label", "start_s", "end_s", "score", "confidence", "uncertainty"
)  # fmt: skip
I3D_DIM = 2048
I3D_ROWS = {"i3d_rgb": slice(0, 1024), "i3d_flow": slice(1024, 2048)}


@dataclass(frozen=True)
class SegmentRecord:
    """:class:`twostream_das.outputs.SegmentRecord` (``end_frame`` exclusive)."""

    label: str
    label_id: Optional[int]
    start_frame: int
    end_frame: int
    num_frames: int
    start_s: Optional[float]
    end_s: Optional[float]
    confidence: Optional[float]
    uncertainty: Optional[float] = None


@dataclass(frozen=True)
class WrittenVideo:
    name: str
    files: dict[str, Path]
    num_frames: int
    segments: list[SegmentRecord]
    fps: float  # the rate of its frames: seconds = frame / fps


def segment_records(
    labels: np.ndarray,
    probs: np.ndarray,
    names: Sequence[str],
    fps: float,
    uncertainty: Optional[np.ndarray] = None,
) -> list[SegmentRecord]:
    """:func:`twostream_das.outputs.segment_records` for class ids ``labels`` (T,)."""
    ids = np.asarray(labels, dtype=np.int64)
    prob = np.asarray(probs, dtype=np.float64)  # (C, T)
    unc = None if uncertainty is None else np.asarray(uncertainty, dtype=np.float64)
    seg_ids, starts, ends = segment_bounds(ids)
    out = []
    for label_id, start, end in zip(seg_ids.tolist(), starts.tolist(), ends.tolist(), strict=True):
        out.append(SegmentRecord(
            names[label_id], label_id, start, end, end - start, start / fps, end / fps,
            float(prob[label_id, start:end].mean()),
            None if unc is None else float(unc[start:end].mean()),
        ))  # fmt: skip
    return out


def csv_text(fields: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`twostream_das.outputs.csv_text`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    return buffer.getvalue()


def segments_json_text(records: Sequence[SegmentRecord], fps: float) -> str:
    """:func:`twostream_das.outputs.write_segments_json`'s text."""
    obj = {
        "fps": fps,
        "num_frames": records[-1].end_frame if records else 0,
        "end_frame": "exclusive",
        "segments": [asdict(rec) for rec in records],
    }
    return json.dumps(obj, indent=2) + "\n"


def prediction_text(labels: np.ndarray, names: Sequence[str]) -> str:
    """An MS-TCN prediction file's text (:func:`twostream_das.outputs.write_prediction`)."""
    return f"{PREDICTION_HEADER}\n{' '.join(names[i] for i in labels.tolist())}\n"


def _write_bytes(path: Path, data: bytes) -> None:
    """Atomic: a temporary file beside ``path``, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    _write_bytes(path, buffer.getvalue())


# ----------------------------------------------------------------------------- inputs


def feature_files(path: str | Path, stream: str) -> dict[str, Path]:
    """Video name -> ``.npy`` file, from one file or a folder of them."""
    path = Path(path)
    if path.is_file():
        return {path.stem: path}
    if path.is_dir():
        files = {p.stem: p for p in sorted(path.glob("*.npy"))}
        if files:
            return files
        raise DataError(f"--{stream} folder {path} holds no .npy feature files")
    raise DataError(f"--{stream} {path} does not exist; expected a .npy file or a folder of them")


def match_streams(
    paths: Mapping[str, str | Path], streams: Sequence[str]
) -> list[tuple[str, dict[str, Path]]]:
    """``(video, stream -> file)`` per video, sorted (single files always pair; folders must
    hold the same names): :func:`twostream_das.workflows.prediction.match_streams`."""
    missing = [s for s in streams if s not in paths]
    unknown = [s for s in paths if s not in streams]
    if missing or unknown:
        raise DataError(
            f"the exported model's streams are {', '.join(streams)}; "
            + (f"missing {', '.join(missing)}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown {', '.join(unknown)}" if unknown else "")
            + f" (give --stream NAME=PATH for each of {', '.join(streams)})"
        )
    files = {s: feature_files(paths[s], s) for s in streams}
    first = streams[0]
    if all(Path(paths[s]).is_file() for s in streams):
        name = next(iter(files[first]))
        return [(name, {s: next(iter(f.values())) for s, f in files.items()})]
    names = set(files[first])
    for stream, found in files.items():
        if set(found) != names:
            raise DataError(
                f"{first} and {stream} features do not pair up: only in {paths[first]}: "
                f"{sorted(names - set(found))[:5]}; only in {paths[stream]}: "
                f"{sorted(set(found) - names)[:5]}; expected the same video names in both"
            )
    return [(n, {s: found[n] for s, found in files.items()}) for n in sorted(names)]


def read_video(
    manifest: Manifest,
    name: str,
    paths: Mapping[str, Path],
    orientations: Mapping[str, Optional[str]],
) -> dict[str, np.ndarray]:
    """One video's streams as float32 (D, T), read as the manifest says (orientation, I3D
    rows), checked, and aligned to the first stream within ``length_tolerance`` frames
    (padding repeats the last frame, trimming drops the end) as ``predict`` reads them.

    Raises:
        DataError: an unreadable file, a dimension that is not the exported one, no frames,
            NaN or inf, or lengths further apart than the tolerance.
    """
    tolerance = int(manifest.data["length_tolerance"])
    feats: dict[str, np.ndarray] = {}
    for entry in manifest.streams:
        path = paths[entry.name]
        what = f"--stream {entry.name} features"
        orientation = orientations.get(entry.name) or (
            "DxT" if entry.source in I3D_ROWS else entry.orientation
        )
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"{what} file {path} cannot be read as .npy ({err})") from None
        if array.ndim != 2 or array.dtype.kind not in "fiu":
            raise DataError(
                f"{what} file {path} has shape {array.shape} ({array.dtype}); expected a 2-D "
                f"array of numbers stored {orientation}"
            )
        x = array if orientation == "DxT" else array.T  # (D, T)
        if entry.source in I3D_ROWS and x.shape[0] == I3D_DIM and entry.dim == I3D_DIM // 2:
            x = x[I3D_ROWS[entry.source]]
        if x.shape[0] != entry.dim:
            raise DataError(
                f"{what} file {path} has dimension {x.shape[0]} (shape {array.shape}, read as "
                f"{orientation}); expected {entry.dim}, the dimension the model was exported with"
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape[1] == 0 or not np.isfinite(x).all():
            raise DataError(f"{what} file {path} has no frames or holds NaN/inf values")
        feats[entry.name] = x
    first = manifest.streams[0].name
    frames = feats[first].shape[1]
    for stream, x in feats.items():
        length = x.shape[1]
        if length == frames:
            continue
        if abs(length - frames) > tolerance:
            raise DataError(
                f"{stream} features of video {name!r} ({paths[stream]}) have {length} frames but "
                f"the {first} features have {frames}; expected a difference of at most "
                f"dataset.length_tolerance={tolerance} frames"
            )
        if length < frames:
            x = np.concatenate([x, np.repeat(x[:, -1:], frames - length, axis=1)], axis=1)
        feats[stream] = np.ascontiguousarray(x[:, :frames])
    return feats


def video_rate(name: str, paths: Mapping[str, Path], given: Optional[float], trained: float
               ) -> float:
    """A video's frame rate: ``given`` (``--fps``); else what ``extract`` recorded beside its
    features (``<root>/video_info/<video>.json``); else ``trained`` (the model's
    ``dataset.fps``): :func:`twostream_das.workflows.prediction.video_rates`."""
    if given is not None:
        return float(given)
    for path in paths.values():
        info_path = Path(path).parent.parent / "video_info" / f"{name}.json"
        try:
            info = json.loads(info_path.read_text()) if info_path.is_file() else None
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) and isinstance(info.get("fps"), (int, float)) and info["fps"] > 0:
            return float(info["fps"])
    return float(trained)


# ----------------------------------------------------------------------------- outputs


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse a folder that holds a prediction unless ``overwrite``; with it, remove the files
    that prediction listed (:func:`twostream_das.workflows.prediction.prepare_output`)."""
    summary_path = out / SUMMARY_JSON
    if not summary_path.is_file():
        return
    if not overwrite:
        raise DataError(
            f"--out {out} already holds a prediction ({SUMMARY_JSON}); expected a new folder, "
            "or pass --overwrite to replace it"
        )
    try:
        old = json.loads(summary_path.read_text())
        listed = {v["name"]: list(v.get("files", {}).values()) for v in old.get("videos", [])}
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as err:
        raise DataError(
            f"{summary_path} cannot be read as a prediction summary ({err}); expected the "
            "summary.json predict writes: remove the folder yourself"
        ) from None
    for video, names in listed.items():
        stale = [out / Path(n).name for n in names]
        stale += (out / STREAMS_DIR).glob(f"*/{Path(video).name}.txt")
        for path in stale:
            path.unlink(missing_ok=True)
    (out / REVIEW_CSV).unlink(missing_ok=True)
    summary_path.unlink()


def write_video(
    result: VideoResult, classes: Sequence[str], out: Path, fps: float, plots: bool = False
) -> WrittenVideo:
    """The per-video files (module docstring) of one :class:`.runtime.VideoResult`."""
    name = result.name
    files = {
        "txt": out / f"{name}.txt",
        "segments_csv": out / f"{name}_segments.csv",
        "segments_json": out / f"{name}_segments.json",
        "probs": out / f"{name}_probs.npy",
    }
    if plots:
        files["png"] = out / f"{name}.png"
    if result.uncertainty is not None:
        files["uncertainty"] = out / f"{name}{UNCERTAINTY_SUFFIX}"
    _write_text(files["txt"], prediction_text(result.labels, classes))
    for stream, labels in result.stream_labels.items():
        _write_text(out / STREAMS_DIR / stream / f"{name}.txt", prediction_text(labels, classes))
    rows = [asdict(r) for r in result.segments]
    _write_text(files["segments_csv"], csv_text(SEGMENT_FIELDS, rows))
    _write_text(files["segments_json"], segments_json_text(result.segments, fps))
    _save_npy(files["probs"], result.probs)
    if result.uncertainty is not None:
        _save_npy(files["uncertainty"], result.uncertainty)
    if plots:
        from ..tools.viz import plot_barcodes  # matplotlib, only when plots are asked for

        bars = {s.upper(): lab for s, lab in result.stream_labels.items()}
        bars["fused"] = result.labels
        plot_barcodes(bars, list(classes), files["png"], title=name, fps=fps)
    return WrittenVideo(name, files, int(result.labels.shape[0]), list(result.segments), fps)


def summary(
    source: str,
    manifest: Manifest,
    fps: float,
    sampling: Sampling,
    videos: Sequence[WrittenVideo],
) -> dict[str, Any]:
    """``summary.json`` (``predict``'s keys, the exported folder as ``checkpoint``, and
    ``engine``); ``sampling`` is what the prediction ran (:meth:`.runtime.OnnxModel.sampling`)."""
    fusion = manifest.fusion
    joint = {"fusion_sampling": fusion["sampling"]} if "sampling" in fusion else {}
    return {
        "checkpoint": source,
        "engine": "onnxruntime",
        "epoch": manifest.raw["checkpoint"]["epoch"],
        "fusion_weights": dict(fusion["weights"]),
        "fusion_input": fusion["input"],
        "fusion_rule": fusion["rule"],
        **joint,
        "temperatures": dict(fusion["temperatures"]),
        "postprocess": dict(manifest.postprocess),
        "fps": fps,
        "classes": manifest.classes,
        "background": list(manifest.raw["background"]),
        "labels_dir": None,
        "sampler": sampling.sampler,
        "steps": sampling.steps,
        "views": sampling.views,
        "timestep_spacing": manifest.sampler.get("timestep_spacing", "linear"),
        "samples": sampling.samples,
        "videos": [
            {"name": v.name, "frames": v.num_frames, "segments": len(v.segments),
             "fps": v.fps, "duration_s": v.num_frames / v.fps if v.fps else None,
             "files": {k: p.name for k, p in v.files.items()}}
            for v in videos
        ],  # fmt: skip
    }


def review_rows(videos: Sequence[WrittenVideo], score: str = "max_prob") -> list[dict[str, Any]]:
    """:func:`twostream_das.workflows.prediction.review_rows`: every segment, least certain
    first."""
    rows = []
    for video in videos:
        for seg in video.segments:
            if score == "mutual_information" and seg.uncertainty is not None:
                value = seg.uncertainty
            else:
                value = 1.0 - (seg.confidence if seg.confidence is not None else 0.0)
            rows.append(
                {"video": video.name, "label": seg.label, "start_s": seg.start_s,
                 "end_s": seg.end_s, "score": value, "confidence": seg.confidence,
                 "uncertainty": seg.uncertainty, "_start": seg.start_frame}
            )  # fmt: skip
    rows.sort(key=lambda r: (-r["score"], r["video"], r["_start"]))
    return [
        {"rank": i + 1, **{k: v for k, v in r.items() if k != "_start"}}
        for i, r in enumerate(rows)
    ]


def write_summary(
    out: Path, data: dict[str, Any], videos: Sequence[WrittenVideo], score: str
) -> None:
    """``summary.json`` and ``review.csv``."""
    _write_text(out / SUMMARY_JSON, json.dumps(data, indent=2, sort_keys=False) + "\n")
    _write_text(out / REVIEW_CSV, csv_text(REVIEW_FIELDS, review_rows(videos, score)))
