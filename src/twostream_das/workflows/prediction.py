"""``predict``: a trained checkpoint applied to feature files, no labels needed.

For every video (one ``.npy`` file per stream of the checkpoint, e.g. RGB and FLOW, with the same
stem) it writes, under OUT:

    <video>.txt            MS-TCN prediction file (one class name per frame)
    <video>_segments.csv   label, start/end frame, start/end seconds, mean confidence
    <video>_segments.json  the same segments
    <video>_probs.npy      fused class probabilities, float32 (C, T) (mean of the K samples); at
                           sample rate r > 1 the views' average at the subsampled rate, restored
                           to every frame by nearest neighbour as the labels are
    <video>_uncertainty.npy  with --samples K > 1: per-frame uncertainty, float32 (T,) (the
                           mutual information between label and sample, uncertainty.py)
    <video>.png            barcode: ground truth (with --labels), each stream, fused; legend
                           (not with --no-plots)
    streams/<stream>/<video>.txt  each stream's own prediction (MS-TCN file), before fusion
    summary.json           the videos, classes, fusion weights, post-processing, the --labels
                           folder (and metrics with labels)

From raw video (``predict --video``), the extraction pipeline first writes the features the
checkpoint needs under ``OUT/features/`` (resumable), resampled to the checkpoint's
``dataset.fps`` by the video's timestamps (the rate the model was trained at), then the same
path runs.

Seconds (``start_s``/``end_s``) are the video's time: ``frame / fps`` with ``fps`` the rate of the
features: ``--fps`` when given, else the rate ``extract`` recorded for the video
(``<features root>/video_info/<video>.json``), else the checkpoint's ``dataset.fps``. Features
recorded at another rate than the checkpoint's get a warning (the model sees every action
faster or slower than in training).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..atomic import atomic_save_npy
from ..config import Config, FeatureSource, Orientation, Precision, ReviewScore, StreamDataConfig
from ..data.dataset import Video
from ..data.features import (
    I3D_DIM,
    I3D_HALF,
    I3D_ROWS,
    align_to_labels,
    check_features,
    feature_bytes,
    read_matrix,
    stored_orientation,
)
from ..data.layout import LabelMap, read_labels
from ..distributed import (
    agreed,
    broadcast_from_main,
    gather_in_order,
    local_device,
    my_share,
    process_group,
    rank_and_world,
    rank_threads,
)
from ..errors import ConfigError, DataError
from ..extraction import ExtractionSettings, FeatureExtractor, FeatureStream, extract_videos
from ..extraction.store import read_video_info
from ..outputs import (
    STREAMS_DIR,
    UNCERTAINTY_SUFFIX,
    SegmentRecord,
    segment_records,
    write_csv_rows,
    write_label_files,
    write_segments_csv,
    write_segments_json,
)
from ..prediction.inference import (
    LoadedModel,
    VideoPrediction,
    load_model,
    predict,
    with_sampling,
)
from ..prediction.uncertainty import frame_uncertainty, normalize_frames
from ..runs import is_main_process, write_json
from ..runtime import resolve_device
from ..tools.viz import plot_barcodes
from .selection import score_rows

logger = logging.getLogger(__name__)

REVIEW_CSV = "review.csv"
SUMMARY_JSON = "summary.json"


def prepare_output(out: Path, overwrite: bool) -> None:
    """Make ``out`` ready for a prediction without losing an earlier one by accident.

    A folder that already holds a prediction (``summary.json``) is refused unless ``overwrite``;
    with it, the files that prediction listed (and its ``review.csv`` and per-stream files) are
    removed first, so none of them outlives the new prediction (e.g. a ``K = 4`` run's
    ``_uncertainty.npy`` beside a later ``K = 1`` run's files). Other files are left alone.

    Raises:
        DataError: ``out`` is a file, cannot be made or written, holds a prediction and
            ``overwrite`` is False, or its ``summary.json`` cannot be read.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; expected a folder (new, or an earlier prediction)")
    base = out  # the folder itself, or the nearest part of its path that exists
    while not base.exists() and base != base.parent:
        base = base.parent
    problem = ("is a file" if not base.is_dir() else
               None if os.access(base, os.W_OK | os.X_OK) else "is not writable")  # fmt: skip
    if problem:  # checked, nothing made: bad input found later leaves no folder behind
        raise DataError(
            f"--out {out} cannot be made or written: {base} {problem}; expected a folder whose "
            "parent exists and is writable"
        )
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
        stale = [out / Path(name).name for name in names]  # bare names inside out, never elsewhere
        stale += (out / STREAMS_DIR).glob(f"*/{Path(video).name}.txt")  # once per video
        for path in stale:
            path.unlink(missing_ok=True)
    (out / REVIEW_CSV).unlink(missing_ok=True)
    summary_path.unlink()


@dataclass(frozen=True)
class PredictedVideo:
    name: str
    files: dict[str, Path]  # kind ("txt", "segments_csv", ...) -> path
    num_frames: int
    num_segments: int
    segments: list[SegmentRecord]
    fps: Optional[float] = None  # the rate of its frames: seconds = frame / fps


def feature_files(path: str | Path, stream: str) -> dict[str, Path]:
    """Video name -> ``.npy`` file, from one file or a folder of files."""
    path = Path(path)
    if path.is_file():
        return {path.stem: path}
    if path.is_dir():
        files = {p.stem: p for p in sorted(path.glob("*.npy"))}
        if files:
            return files
        raise DataError(f"--{stream} folder {path} holds no .npy feature files")
    raise DataError(f"--{stream} {path} does not exist; expected a .npy file or a folder of them")


def match_streams(paths: Mapping[str, str | Path]) -> list[tuple[str, dict[str, Path]]]:
    """Match each stream's files by name: ``(video, stream -> file)`` per video, sorted.

    Single files always match (the first stream's file stem names the video); folders must
    hold the same names.
    """
    files = {s: feature_files(p, s) for s, p in paths.items()}
    first = next(iter(paths))
    if all(Path(p).is_file() for p in paths.values()):
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


def check_stream_paths(loaded: LoadedModel, paths: Mapping[str, object], what: str) -> None:
    """``paths`` names exactly the checkpoint's streams.

    Raises:
        ConfigError: naming the missing and the unknown streams.
    """
    names = loaded.model.stream_names
    missing = [s for s in names if s not in paths]
    unknown = [s for s in paths if s not in names]
    if missing or unknown:
        raise ConfigError(
            f"{what}: the checkpoint's streams are {', '.join(names)}; "
            + (f"missing {', '.join(missing)}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown {', '.join(unknown)}" if unknown else "")
            + f" (give --stream NAME=PATH for each of {', '.join(names)})"
        )


def read_feature_file(
    path: Path,
    stream: str,
    spec: StreamDataConfig,
    expected_dim: int,
    orientation: Optional[Orientation],
) -> np.ndarray:
    """One stream's features as float32 ``(D, T)``, checked as the data layer checks them.

    Orientation comes from ``orientation`` when given, else from the checkpoint's config
    (I3D files are always DxT). For an I3D stream a full 2048-row file is sliced to the stream's
    half; a file with exactly ``expected_dim`` rows is taken as already sliced.

    Raises:
        DataError: unreadable file, wrong rank or dtype, a dimension that is not
        ``expected_dim`` (with a hint at ``--<stream>-orientation`` when the file looks
        transposed), no frames, NaN or inf.
    """
    what = f"--stream {stream} features"
    layout = orientation or stored_orientation(spec)
    feats = read_matrix(path, layout, what)  # (D, T)
    if spec.source in I3D_ROWS and feats.shape[0] == I3D_DIM and expected_dim == I3D_HALF:
        feats = feats[I3D_ROWS[spec.source]]  # (1024, T), still C-contiguous
    check_features(feats, path, what, expected_dim, layout, f"--orientation {stream}")
    return feats


def load_prediction_videos(
    pairs: Sequence[tuple[str, Mapping[str, Path]]],
    loaded: LoadedModel,
    labels_dir: Optional[Path],
    orientations: Mapping[str, Optional[Orientation]],
) -> list[Video]:
    """Read each video's stream files (and labels when a folder is given) as :class:`Video`.

    Streams are aligned to the label length when labels are given, else to the first stream,
    within ``dataset.length_tolerance`` frames.
    """
    cfg = loaded.config
    label_map = LabelMap(tuple(loaded.label_names))
    videos = []
    for name, paths in pairs:
        raw = {
            s: read_feature_file(
                paths[s], s, cfg.dataset.streams[s], loaded.checkpoint.stream_dims[s],
                orientations.get(s),
            )
            for s in loaded.model.stream_names
        }
        labels = None
        if labels_dir is not None:
            label_file = labels_dir / f"{name}.txt"
            if not label_file.is_file():
                raise DataError(f"--labels folder {labels_dir} has no {name}.txt for video {name}")
            labels = read_labels(label_file, label_map)
        first = next(iter(raw))  # without labels, every stream is aligned to the first one
        num_frames = len(labels) if labels is not None else raw[first].shape[1]
        reference = "the labels" if labels is not None else f"the {first} features"
        features = {
            s: align_to_labels(
                f, num_frames, cfg.dataset.length_tolerance, name, s, paths[s], reference
            )
            for s, f in raw.items()
        }
        videos.append(Video(name, features, labels))
    return videos


def predict_files(
    checkpoint: str | Path,
    features: Mapping[str, str | Path],
    out: str | Path,
    fps: Optional[float] = None,
    labels_dir: Optional[str | Path] = None,
    orientations: Optional[Mapping[str, Optional[Orientation]]] = None,
    quiet: bool = False,
    device: str = "auto",
    precision: Optional[Precision | str] = None,
    steps: Optional[int] = None,
    samples: Optional[int] = None,
    overwrite: bool = False,
    review_score: Optional[ReviewScore | str] = None,
    threads: Optional[int] = None,
    plots: bool = True,
    *,
    sampler: Optional[str] = None,
    views: Optional[str] = None,
    fast: bool = False,
) -> dict[str, Any]:
    """Predict every video of ``features`` (stream -> ``.npy`` file or folder, one per stream of
    the checkpoint) and write the files listed in the module docstring.

    ``orientations``: stream -> axis order of its files (None: the checkpoint's config).
    ``precision`` (``fp32`` or ``bf16``), ``sampler``, ``steps``, ``samples`` and ``views``
    override the checkpoint's ``eval.precision``, ``eval.sampler``, ``eval.steps``,
    ``eval.samples`` and ``eval.views`` (None keeps them); ``fast`` sets
    :data:`~twostream_das.config.FAST_SAMPLING` first, the values given win over it.
    ``overwrite``: replace a prediction already in ``out`` (:func:`prepare_output`; without it
    such a folder is refused).
    ``review_score`` overrides ``eval.review_score`` (how ``review.csv`` ranks segments).
    ``threads``: torch CPU threads (:func:`~twostream_das.distributed.rank_threads`).
    ``plots=False`` writes no ``<video>.png`` (:func:`write_video_outputs`).

    Under ``torchrun`` (:mod:`twostream_das.distributed`, a gloo group) each rank predicts a
    disjoint share of the videos, balanced by the size of their feature files (proportional to
    their frames), and writes those videos' files; rank 0 checks ``out`` first, then gathers
    each video's segments and labels and writes ``summary.json`` and ``review.csv`` exactly as
    one process does. A video's DDIM draws are seeded by its features
    (:func:`~twostream_das.prediction.inference.view_generators`), so the predictions do not
    depend on the rank.

    Returns the summary written to ``OUT/summary.json`` (on every rank).
    """
    rank_threads(threads)  # every rank alike: before any collective
    with process_group(torch.device("cpu"), backend="gloo"):
        return _predict_files(
            checkpoint, features, Path(out), fps, labels_dir, orientations or {}, quiet,
            device, precision, {"steps": steps, "samples": samples, "sampler": sampler,
                                "views": views, "fast": fast},
            overwrite, review_score, plots,
        )  # fmt: skip


@dataclass(frozen=True)
class _Predicted:
    """What rank 0 needs of one video predicted on any rank (no probabilities)."""

    index: int  # the video's place in the one-process order
    video: PredictedVideo
    labels: Optional[dict[str, np.ndarray]]  # with --labels: "gt", each stream, "fused": (T,)


def _predict_files(
    checkpoint: str | Path,
    features: Mapping[str, str | Path],
    out: Path,
    fps: Optional[float],
    labels_dir: Optional[str | Path],
    orientations: Mapping[str, Optional[Orientation]],
    quiet: bool,
    device_name: str,
    precision: Optional[Precision | str],
    sampling: dict[str, Any],
    overwrite: bool,
    review_score: Optional[ReviewScore | str],
    plots: bool,
) -> dict[str, Any]:
    rank, world = rank_and_world()
    with agreed():  # before any rank writes
        if rank == 0:
            prepare_output(out, overwrite)
    with agreed():
        device = local_device(resolve_device(device_name, "--device"))
        loaded = load_model(checkpoint, device)
        check_stream_paths(loaded, features, "predict")
        known = dict.fromkeys(loaded.model.stream_names)
        check_stream_paths(loaded, {**known, **orientations}, "predict orientations")
        cfg = with_sampling(loaded.config, **sampling)
        if precision is not None:
            cfg = replace(cfg, eval=replace(cfg.eval, precision=Precision(precision)))
        if review_score is not None:
            cfg = replace(cfg, eval=replace(cfg.eval, review_score=ReviewScore(review_score)))
        if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps < float("inf")):
            raise ConfigError(f"--fps {fps!r} is invalid; expected a finite number > 0")
        labels_path = Path(labels_dir) if labels_dir is not None else None
        pairs = match_streams(features)
        rates = video_rates(pairs, fps, cfg.dataset.fps)
        fps = cfg.dataset.fps if fps is None else fps
        mine = my_share({name: feature_bytes(paths.values()) for name, paths in pairs})
        videos = load_prediction_videos(
            [p for p in pairs if p[0] in mine], loaded, labels_path, orientations
        )
    if world > 1:
        logger.info("rank %d of %d: %d of %d videos", rank, world, len(videos), len(pairs))
    index = {name: i for i, (name, _) in enumerate(pairs)}
    weights, post = loaded.fusion_weights, loaded.postprocess
    method = loaded.fusion_method
    done: list[_Predicted] = []
    desc = "predict" if world == 1 else f"predict (rank {rank}/{world})"
    with agreed():
        for pred in predict(
            loaded.model, videos, cfg, weights, post, device, not quiet, desc, method
        ):
            files = write_video_outputs(pred, loaded, out, rates[pred.name], plots)
            done.append(_Predicted(index[pred.name], files, pred.label_rows()))
    ordered = gather_in_order(done, key=lambda p: p.index)
    summary: Optional[dict[str, Any]] = None
    with agreed():
        if ordered is not None:  # rank 0 (or the only process): every video, in list order
            summary = _summary(checkpoint, loaded, cfg, fps, labels_path, ordered)
            written = [p.video for p in ordered]
            write_json(out / SUMMARY_JSON, summary)
            write_csv_rows(
                out / REVIEW_CSV, REVIEW_FIELDS, review_rows(written, cfg.eval.review_score)
            )
            logger.info("predicted %d video(s) into %s", len(written), out)
    return broadcast_from_main(summary)


def _summary(
    checkpoint: str | Path,
    loaded: LoadedModel,
    cfg: Config,
    fps: float,
    labels_path: Optional[Path],
    predicted: Sequence[_Predicted],
) -> dict[str, Any]:
    """``summary.json`` of the videos ``predicted`` (in their order), with metrics when they
    carry labels."""
    method = loaded.fusion_method
    summary: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "epoch": loaded.checkpoint.epoch,
        "fusion_weights": loaded.fusion_weights.to_dict(),
        "fusion_input": cfg.fusion.input.value,
        "fusion_sampling": cfg.fusion.sampling.value,
        "fusion_rule": method.rule.value,
        "temperatures": dict(method.temperatures),
        "postprocess": loaded.postprocess.to_dict(),
        "fps": fps,
        "classes": list(loaded.label_names),
        "background": list(cfg.dataset.background),
        "labels_dir": str(labels_path.resolve()) if labels_path is not None else None,
        "sampler": cfg.eval.sampler,
        "steps": cfg.eval.steps,
        "views": cfg.eval.views.value,
        "timestep_spacing": cfg.eval.timestep_spacing.value,
        "samples": cfg.eval.samples,
        "videos": [
            {
                "name": p.video.name,
                "frames": p.video.num_frames,
                "segments": p.video.num_segments,
                "fps": p.video.fps,
                "duration_s": p.video.num_frames / p.video.fps if p.video.fps else None,
                "files": {k: path.name for k, path in p.video.files.items()},
            }
            for p in predicted
        ],
    }
    labelled = [p.labels for p in predicted if p.labels is not None]
    if labelled:
        keys = ("fused", *loaded.model.stream_names)
        summary["metrics"] = score_rows(labelled, keys, loaded.label_names, cfg)
    return summary


def video_rates(
    pairs: Sequence[tuple[str, Mapping[str, Path]]], given: Optional[float], trained: float
) -> dict[str, float]:
    """Frames per second of each video's features: ``given`` (``--fps``) for all; else what
    ``extract`` recorded beside the features (``<root>/video_info/<video>.json`` with the
    files in ``<root>/features_<stream>/``); else ``trained`` (``dataset.fps``). Logs one
    warning when recorded rates differ from ``trained``."""
    rates: dict[str, float] = {}
    off: dict[str, float] = {}
    for name, paths in pairs:
        recorded = None
        for path in paths.values():
            info = read_video_info(Path(path).parent.parent, name)
            if info is not None and isinstance(info.get("fps"), (int, float)) and info["fps"] > 0:
                recorded = float(info["fps"])
                break
        if recorded is not None and abs(recorded - trained) > 0.01 * trained:
            off[name] = recorded
        rates[name] = given if given is not None else recorded or trained
    if off:
        first = next(iter(off))
        logger.warning(
            "%d video(s) have features at another rate than the checkpoint's dataset.fps = %g "
            "(%s: %g fps): the model sees their actions %s than in training; extract them "
            "again with --fps %g", len(off), trained, first, off[first],
            "faster" if off[first] < trained else "slower", trained,
        )
    return rates


def extraction_streams(loaded: LoadedModel) -> dict[str, FeatureStream]:
    """Which extractor stream gives each model stream its features (for ``--video``).

    I3D sources map to the I3D streams; a folder source maps by its dimension: 768-d RGB is the
    ViT (Br-Prompt/CLIP) encoder, 1024-d the I3D tower of the same modality (a stream named
    like an extractor modality: ``rgb`` / ``flow``).

    Raises:
        ConfigError: a stream the extractor cannot produce (extract it yourself, pass a file).
    """
    by_source = {
        FeatureSource.I3D_RGB: FeatureStream.I3D_RGB,
        FeatureSource.I3D_FLOW: FeatureStream.I3D_FLOW,
    }
    by_dim = {  # (a model stream named after its modality, dim) -> the extractor stream
        (s.modality, dim): s
        for s, dim in ((FeatureStream.CLIP_RGB, 768), (FeatureStream.I3D_RGB, I3D_HALF),
                       (FeatureStream.I3D_FLOW, I3D_HALF))
    }
    out = {}
    for stream in loaded.model.stream_names:
        spec: StreamDataConfig = loaded.config.dataset.streams[stream]
        dim = loaded.checkpoint.stream_dims[stream]
        found = by_source.get(spec.source) or by_dim.get((stream, dim))
        if found is None:
            raise ConfigError(
                f"the checkpoint's {stream} stream reads {dim}-d features ({spec.source.value}); "
                f"--video can extract i3d_rgb (1024-d), clip_rgb (768-d) and i3d_flow (1024-d) "
                f"only. Extract the features yourself and pass --stream NAME=PATH per stream"
            )
        out[stream] = found
    return out


def extract_features(
    video: str | Path,
    loaded: LoadedModel,
    out: Path,
    weights: Mapping[FeatureStream, Optional[str | Path]],
    settings: Optional[ExtractionSettings] = None,
    quiet: bool = False,
    weight_names: Optional[Mapping[FeatureStream, str]] = None,
) -> dict[str, Path]:
    """Run the extraction pipeline on a video file or folder, writing ``out/<features_...>``.

    ``weight_names`` says how errors name each weights option (the CLI passes its flag and
    environment variable). Resumable (complete feature files are skipped). Returns stream ->
    folder of ``.npy`` files.
    """
    wanted = extraction_streams(loaded)
    extractor = FeatureExtractor.from_weights(
        tuple(dict.fromkeys(wanted.values())),
        i3d_rgb_weights=weights.get(FeatureStream.I3D_RGB),
        i3d_flow_weights=weights.get(FeatureStream.I3D_FLOW),
        clip_weights=weights.get(FeatureStream.CLIP_RGB),
        settings=settings,
        weight_names=weight_names,
    )
    extract_videos(
        video,
        out,
        extractor,
        tuple(dict.fromkeys(wanted.values())),
        combined=False,
        progress=not quiet,
    )
    return {stream: out / source.folder for stream, source in wanted.items()}


def predict_videos(
    checkpoint: str | Path,
    video: str | Path,
    out: str | Path,
    weights: Mapping[FeatureStream, Optional[str | Path]],
    settings: Optional[ExtractionSettings] = None,
    weight_names: Optional[Mapping[FeatureStream, str]] = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """``predict --video``: extract features into ``OUT/features/`` at the checkpoint's
    ``dataset.fps`` (``settings.fps`` when set), then :func:`predict_files`.

    Under ``torchrun`` the extraction and the prediction are both sharded over the ranks."""
    rank_threads(kwargs.get("threads"))  # for the extraction too
    with process_group(torch.device("cpu"), backend="gloo"):
        with agreed():  # before the long extraction
            if is_main_process():
                prepare_output(Path(out), kwargs.get("overwrite", False))
        with agreed():
            loaded = load_model(checkpoint, torch.device("cpu"))
            settings = settings or ExtractionSettings()
            if settings.fps is None:  # the rate the model was trained at
                settings = replace(settings, fps=loaded.config.dataset.fps)
            folders = extract_features(
                video, loaded, Path(out) / "features", weights, settings,
                kwargs.get("quiet", False), weight_names,
            )  # fmt: skip
        dxt: dict[str, Optional[Orientation]] = {s: Orientation.DxT for s in folders}  # (D, T)
        return predict_files(checkpoint, folders, out, orientations=dxt, **kwargs)


@dataclass(frozen=True)
class VideoOutputs:
    """What is written for one video, computed once (:func:`video_outputs`)."""

    labels: np.ndarray  # (T,) int64 fused, post-processed
    probs: np.ndarray  # (C, T) float32 fused, each frame summing to 1
    stream_labels: dict[str, np.ndarray]  # stream -> (T,) int64
    uncertainty: Optional[np.ndarray]  # (T,) float32 with K > 1 samples, else None


def video_outputs(pred: VideoPrediction, loaded: LoadedModel) -> VideoOutputs:
    """Labels, normalised fused probabilities and the per-frame uncertainty of one video."""
    probs = normalize_frames(pred.decision.fused_probs)  # (C, T), columns sum to 1
    uncertainty = frame_uncertainty(pred.video.fused_sample_probs(
        loaded.config.fusion.input, loaded.fusion_weights, loaded.fusion_method
    ))  # (T_s,) or None
    if uncertainty is not None:
        uncertainty = pred.video.full_rate(uncertainty)  # (T,) as the labels are restored
    return VideoOutputs(pred.decision.labels, probs, dict(pred.decision.stream_labels),
                        uncertainty)


def write_video_outputs(
    pred: VideoPrediction, loaded: LoadedModel, out: Path, fps: float, plot: bool = True
) -> PredictedVideo:
    """The per-video files of the module docstring (the barcode PNG only with ``plot``)."""
    return write_outputs(out, pred.name, video_outputs(pred, loaded), loaded.label_names, fps,
                         pred.video.labels, plot)


def write_outputs(
    out: Path,
    name: str,
    outputs: VideoOutputs,
    names: Sequence[str],
    fps: float,
    gt: Optional[np.ndarray] = None,
    plot: bool = True,
) -> PredictedVideo:
    """Write one video's files (module docstring) into ``out``; ``gt`` (T,) adds a GT row to
    the barcode."""
    labels, probs, uncertainty = outputs.labels, outputs.probs, outputs.uncertainty
    files = {
        "txt": out / f"{name}.txt",
        "segments_csv": out / f"{name}_segments.csv",
        "segments_json": out / f"{name}_segments.json",
        "probs": out / f"{name}_probs.npy",
    }
    if plot:
        files["png"] = out / f"{name}.png"
    if uncertainty is not None:
        files["uncertainty"] = out / f"{name}{UNCERTAINTY_SUFFIX}"
    rows = {}
    if gt is not None:
        rows["GT"] = gt
    rows.update({s.upper(): stream for s, stream in outputs.stream_labels.items()})
    rows["fused"] = labels
    segs = segment_records(labels, probs, names, fps, uncertainty)
    out.mkdir(parents=True, exist_ok=True)  # every rank writes the files of its own videos
    write_label_files(out, name, labels, outputs.stream_labels, names)
    write_segments_csv(files["segments_csv"], segs)
    write_segments_json(files["segments_json"], segs, fps)
    atomic_save_npy(files["probs"], probs)
    if uncertainty is not None:
        atomic_save_npy(files["uncertainty"], uncertainty)
    if plot:
        plot_barcodes(rows, list(names), files["png"], title=name, fps=fps)
    return PredictedVideo(name, files, len(labels), len(segs), segs, fps)


REVIEW_FIELDS: tuple[str, ...] = (
    "rank", "video", "label", "start_s", "end_s", "score", "confidence", "uncertainty"
)  # fmt: skip


def review_rows(
    videos: Sequence[PredictedVideo], score: ReviewScore = ReviewScore.MAX_PROB
) -> list[dict[str, Any]]:
    """Every segment of every video, least certain first (ties: video, then start).

    ``score`` (``eval.review_score``): ``max_prob`` ranks by ``1 - confidence`` (the segment's
    mean fused max probability); ``mutual_information`` by the segment's mean mutual
    information, and by ``1 - confidence`` where a video has none (one sample has no spread).
    """
    rows = []
    for video in videos:
        for seg in video.segments:
            if score is ReviewScore.MUTUAL_INFORMATION and seg.uncertainty is not None:
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
