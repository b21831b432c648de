"""The Python API for notebooks and scripts: train, evaluate, load a checkpoint, segment
videos, score, write the files ``predict`` writes. A walk-through: ``docs/API.md``.

::

    import twostream_das as tsd

    model = tsd.load_model("runs/gtea/split1/checkpoints/best.pt", device="cpu")
    result = tsd.predict(model, {"rgb": rgb_features, "flow": "feats/flow/video1.npy"})
    result.segments[0]          # SegmentRecord(label='take', start_frame=0, end_frame=41, ...)
    result.probs.shape          # (C, T): fused per-frame class probabilities

It is the path ``predict`` (the command) and ``evaluate`` run, with the checkpoint's selected
fusion weights and post-processing: the same features give the same result as the command.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from .config import Config, Orientation, StreamDataConfig, load_config
from .data.dataset import Video
from .data.features import align_to_labels, check_features
from .errors import ConfigError, DataError
from .metrics import score
from .outputs import SegmentRecord, segment_records, write_csv_rows
from .prediction.inference import LoadedModel, VideoPrediction, with_sampling
from .prediction.inference import load_model as _load_model
from .prediction.inference import predict as _predict
from .runtime import resolve_device
from .workflows.prediction import (
    REVIEW_CSV,
    REVIEW_FIELDS,
    VideoOutputs,
    read_feature_file,
    review_rows,
    video_outputs,
    write_outputs,
)

__all__ = [
    "FeatureInput", "LoadedModel", "Prediction", "Segment", "evaluate", "load_config",
    "load_model", "predict", "predict_many", "predict_video", "score", "train",
    "write_predictions",
]  # fmt: skip

Segment = SegmentRecord
"""One segment: ``label``, ``label_id``, ``start_frame`` (inclusive), ``end_frame`` (exclusive),
``num_frames``, ``start_s``, ``end_s``, ``confidence`` (the mean fused probability of its label
over its frames) and ``uncertainty`` (the mean per-frame uncertainty; None with one sample)."""

FeatureInput = Union[np.ndarray, torch.Tensor, str, Path]
"""One stream's features: an array ``(D, T)`` (``(T, D)`` with ``layout="TxD"``), or a ``.npy``
file read as the checkpoint's config says (its orientation; the I3D half of a 2048-row file)."""

PREDICT_MANY_CHUNK = 64
"""Videos :func:`predict_many` reads ahead and predicts together (batched as the command
batches them); the rest of the iterable is read only when these are done."""


@dataclass(frozen=True, repr=False)
class Prediction:
    """What :func:`predict` returns for one video.

    Attributes:
        name: the video's name (given, or the first file's stem).
        class_names: the checkpoint's classes in id order (``C``).
        labels: (T,) int64 class ids, fused then post-processed.
        probs: (C, T) float32 fused probabilities, each frame summing to 1 (before
            post-processing).
        stream_probs: stream -> (C, T_s) float32 probabilities of that stream alone (at the
            subsampled rate when ``dataset.sample_rate`` > 1).
        stream_labels: stream -> (T,) int64 labels of that stream alone (post-processed).
        segments: the segments of ``labels`` with times (``fps``), confidences and
            uncertainties.
        fps: frames per second of the features, for the segment times (the video's time).
        uncertainty: (T,) float32 per-frame uncertainty of the fused decision (the mutual
            information between label and sample, in nats) with ``samples`` > 1, else None.
        samples: samples drawn per stream.
        steps: sampler steps per sample.
        sampler: the sampler (``eval.sampler``: ``ddim``, ``dpmpp_2m``, ...).
        views: the temporal offset views sampled (``eval.views``: ``all`` or ``middle``).
        duration_s: the video's duration (:func:`predict_video`), else None.
    """

    name: str
    class_names: list[str]
    labels: np.ndarray
    probs: np.ndarray
    stream_probs: dict[str, np.ndarray]
    stream_labels: dict[str, np.ndarray]
    segments: list[Segment]
    fps: float
    uncertainty: Optional[np.ndarray] = None
    samples: int = 1
    steps: Optional[int] = None
    duration_s: Optional[float] = None
    sampler: str = "ddim"
    views: str = "all"

    @property
    def label_names(self) -> list[str]:
        """(T,) the class name of every frame."""
        return [self.class_names[i] for i in self.labels.tolist()]

    @property
    def num_frames(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        extra = f", uncertainty=({self.num_frames},)" if self.uncertainty is not None else ""
        return (f"Prediction(name={self.name!r}, frames={self.num_frames}, segments="
                f"{len(self.segments)}, classes={len(self.class_names)}, fps={self.fps:g}, "
                f"samples={self.samples}{extra})")

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per segment (``video`` and the :data:`Segment` fields), for
        ``pandas.DataFrame(pred.to_records())``, ``csv.DictWriter`` or JSON."""
        return [{"video": self.name, **dataclasses.asdict(seg)} for seg in self.segments]

    def write(self, folder: str | Path, *, plot: bool = True) -> dict[str, Path]:
        """Write the files the ``predict`` command writes for this video into ``folder``:
        ``<name>.txt``, ``_segments.csv``, ``_segments.json``, ``_probs.npy``,
        ``_uncertainty.npy`` (with samples > 1), ``streams/<stream>/<name>.txt`` and the barcode
        ``<name>.png`` (``plot``). Returns kind -> path. :func:`write_predictions` also writes
        the review queue of several videos."""
        written = write_outputs(Path(folder), self.name, self._outputs(), self.class_names,
                                self.fps, None, plot)
        return dict(written.files)

    def _outputs(self) -> VideoOutputs:
        return VideoOutputs(self.labels, self.probs, dict(self.stream_labels), self.uncertainty)


def write_predictions(predictions: Iterable[Prediction], folder: str | Path, *,
                      plot: bool = True) -> list[dict[str, Path]]:
    """:meth:`Prediction.write` for each prediction, then ``review.csv``: every segment, least
    certain first (as ``predict`` ranks them by default). Returns each video's files."""
    folder = Path(folder)
    done, files = [], []
    for pred in predictions:
        written = write_outputs(folder, pred.name, pred._outputs(), pred.class_names, pred.fps,
                                None, plot)
        done.append(written)
        files.append(dict(written.files))
    write_csv_rows(folder / REVIEW_CSV, REVIEW_FIELDS, review_rows(done))
    return files


def load_model(checkpoint: str | Path, device: str | torch.device = "auto") -> LoadedModel:
    """Rebuild the model of a checkpoint (``torch.load(weights_only=True)``), in eval mode.

    Args:
        checkpoint: e.g. ``RUN_DIR/checkpoints/best.pt``.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` or a
            ``torch.device``.

    Returns:
        A :class:`~twostream_das.prediction.inference.LoadedModel`: ``.model``, ``.config``,
        ``.label_names``, ``.fusion_weights``, ``.postprocess`` and the stored ``.checkpoint``.

    Raises:
        CheckpointError: missing, unreadable or foreign file.
        ConfigError: an unknown device.
    """
    target = (device if isinstance(device, torch.device)
              else resolve_device(str(device), "load_model(device=...)"))  # fmt: skip
    return _load_model(checkpoint, target)




def predict(
    model: LoadedModel,
    features: Mapping[str, FeatureInput],
    *,
    name: Optional[str] = None,
    fps: Optional[float] = None,
    steps: Optional[int] = None,
    samples: Optional[int] = None,
    seed: Optional[int] = None,
    layout: Orientation | str = Orientation.DxT,
    orientations: Optional[Mapping[str, Orientation | str]] = None,
    sampler: Optional[str] = None,
    views: Optional[str] = None,
    fast: bool = False,
) -> Prediction:
    """Segment one video with a loaded model.

    Args:
        model: from :func:`load_model`.
        features: stream name -> features, one entry for every stream of the checkpoint
            (``model.streams``). Arrays and tensors are ``(D, T)``, or ``(T, D)`` with
            ``layout="TxD"`` (most extractors give that); a path is a ``.npy`` file stored as
            the checkpoint's config says, or as ``orientations`` says. Streams are aligned to
            the first one within ``dataset.length_tolerance`` frames.
        name: the video's name (default: the first file's stem, else ``video``).
        fps: frames per second of the features, for the segment times (default: the config's
            ``dataset.fps``).
        steps: sampler steps (default: the checkpoint's ``eval.steps``).
        samples: samples per stream, averaged; with 2 or more the result carries the
            per-frame and per-segment uncertainty (default: the checkpoint's ``eval.samples``,
            1 unless set).
        seed: the sampling seed (default: the checkpoint's ``eval.seed``); a video's noise is
            drawn from it and the video's features, so the same call gives the same result.
        layout: axis order of the arrays and tensors, ``"DxT"`` (default) or ``"TxD"``.
        orientations: stream -> ``DxT`` / ``TxD`` for files (default: the config's).
        sampler: the sampler, a name of ``twostream_das.diffusion.SAMPLERS`` (``ddim``,
            ``dpmpp_2m``, ``dpmpp_2m_sde``; default: the checkpoint's ``eval.sampler``).
        views: at ``dataset.sample_rate`` > 1, ``"all"`` offset views averaged or the
            ``"middle"`` one alone (default: the checkpoint's ``eval.views``).
        fast: the measured fast setting first (``twostream_das.config.FAST_SAMPLING``,
            docs/SAMPLERS.md); ``sampler``, ``steps``, ``samples`` and ``views`` given win.

    Returns:
        A :class:`Prediction`.

    Raises:
        ConfigError: streams missing or unknown, a bad ``fps``, ``steps``, ``samples``,
            ``sampler``, ``views`` or ``seed``.
        DataError: a bad file or array (dimension, NaN, no frames, lengths), as the command says.
    """
    (result,) = predict_many(model, [(name, features)], fps=fps, steps=steps, samples=samples,
                             seed=seed, layout=layout, orientations=orientations,
                             sampler=sampler, views=views, fast=fast)
    return result


VideoItem = Union[Mapping[str, FeatureInput], tuple[Optional[str], Mapping[str, FeatureInput]]]
"""A video for :func:`predict_many`: its features, or ``(name, features)``."""


def predict_many(
    model: LoadedModel,
    videos: Iterable[VideoItem],
    *,
    fps: Optional[float] = None,
    steps: Optional[int] = None,
    samples: Optional[int] = None,
    seed: Optional[int] = None,
    layout: Orientation | str = Orientation.DxT,
    orientations: Optional[Mapping[str, Orientation | str]] = None,
    progress: bool = False,
    sampler: Optional[str] = None,
    views: Optional[str] = None,
    fast: bool = False,
) -> Iterator[Prediction]:
    """:func:`predict` for many videos, batched as the ``predict`` command batches them (the
    views of several videos per forward pass, grouped by length): faster than one call per
    video, with the same results.

    Args:
        videos: per video, its features (as in :func:`predict`) or ``(name, features)``. Read
            :data:`PREDICT_MANY_CHUNK` videos at a time, so a generator of files never sits in
            memory whole.
        progress: a progress bar per chunk.
        Others: as in :func:`predict`, for every video.

    Yields:
        One :class:`Prediction` per video, in order.
    """
    cfg = _sampling_config(model.config, seed, steps=steps, samples=samples, sampler=sampler,
                           views=views, fast=fast)
    if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps < float("inf")):
        raise ConfigError(f"fps = {fps!r} is invalid; expected a finite number > 0")
    rate = cfg.dataset.fps if fps is None else float(fps)
    array_layout = _orientation(layout, "layout")
    file_layouts = {s: _orientation(v, f"orientations[{s!r}]")
                    for s, v in (orientations or {}).items()}
    chunk: list[Video] = []
    for item in videos:
        name, features = item if isinstance(item, tuple) else (None, item)
        chunk.append(_video(model, features, name, array_layout, file_layouts))
        if len(chunk) == PREDICT_MANY_CHUNK:
            yield from _predict_chunk(model, chunk, cfg, rate, progress)
            chunk = []
    if chunk:
        yield from _predict_chunk(model, chunk, cfg, rate, progress)


def predict_video(
    model: LoadedModel,
    video: str | Path,
    *,
    fps: Optional[float] = None,
    extractor: Any = None,
    i3d_rgb_weights: Optional[str | Path] = None,
    i3d_flow_weights: Optional[str | Path] = None,
    clip_weights: Optional[str | Path] = None,
    steps: Optional[int] = None,
    samples: Optional[int] = None,
    seed: Optional[int] = None,
    progress: bool = False,
    sampler: Optional[str] = None,
    views: Optional[str] = None,
    fast: bool = False,
) -> Prediction:
    """Segment a video file: its frames resampled to the checkpoint's ``dataset.fps`` by their
    timestamps, the features the checkpoint's streams need extracted in memory (nothing is
    written), then :func:`predict`. Seconds in the result are the video's time.

    Args:
        video: a file PyAV decodes.
        fps: the rate to resample to (default: the checkpoint's ``dataset.fps``, the rate it
            was trained at).
        extractor: a :class:`~twostream_das.extraction.FeatureExtractor` to reuse across
            videos (its networks stay loaded); default: one built from the weight files.
        i3d_rgb_weights, i3d_flow_weights, clip_weights: local weight files of the networks the
            checkpoint's streams need (default: ``$TWOSTREAM_DAS_I3D_RGB_WEIGHTS``, ...).
        Others: as in :func:`predict`.

    Returns:
        A :class:`Prediction` with ``duration_s`` set.

    Raises:
        ConfigError: a stream the extractor cannot make (see ``predict --video``).
        WeightsNotFoundError: a needed weight file not given or not there.
        DataError: the file cannot be decoded.
    """
    from .extraction import WEIGHTS_ENV, ExtractionSettings, FeatureExtractor, FeatureStream
    from .workflows.prediction import extraction_streams

    wanted = extraction_streams(model)
    sources = tuple(dict.fromkeys(wanted.values()))
    rate = float(fps) if fps is not None else model.config.dataset.fps
    if extractor is None:
        given = {FeatureStream.I3D_RGB: i3d_rgb_weights, FeatureStream.I3D_FLOW: i3d_flow_weights,
                 FeatureStream.CLIP_RGB: clip_weights}
        paths = {s: v if v is not None else os.environ.get(WEIGHTS_ENV[s])
                 for s, v in given.items()}
        extractor = FeatureExtractor.from_weights(
            sources, i3d_rgb_weights=paths[FeatureStream.I3D_RGB],
            i3d_flow_weights=paths[FeatureStream.I3D_FLOW],
            clip_weights=paths[FeatureStream.CLIP_RGB], settings=ExtractionSettings(fps=rate),
        )
    elif extractor.settings.fps != rate:
        settings = dataclasses.replace(extractor.settings, fps=rate)
        extractor = FeatureExtractor(extractor.models, settings)
    extracted = extractor.extract(video, sources, progress=progress)
    features = {stream: extracted.features[source.value] for stream, source in wanted.items()}
    result = predict(model, features, name=Path(video).stem, fps=rate, steps=steps,
                     samples=samples, seed=seed, sampler=sampler, views=views, fast=fast)
    timing = extracted.timing
    return dataclasses.replace(result, duration_s=timing.duration_s if timing else None)


def train(
    config: Config | str | Path,
    out: str | Path,
    *,
    fold: int = 1,
    overrides: Optional[Sequence[str]] = None,
    quiet: bool = True,
) -> Any:
    """Train the streams of a config on one fold into run folder ``out`` (the ``train``
    command): validation picks the epoch, fusion weights and post-processing; a killed run
    resumes, a finished one is left as it is.

    Args:
        config: a :class:`~twostream_das.config.Config`, a YAML file (``init-config`` writes
            one) or a preset name (``gtea``, ``50salads``, ``breakfast``, ``demo``).
        out: the run folder.
        fold: the split number k (``splits/train.split<k>.bundle``).
        overrides: ``key=value`` strings, as ``--set`` takes them (with a file or a preset).
        quiet: no progress bars.

    Returns:
        ``TrainResult``: ``.run`` (the run folder; ``.run.best`` is the checkpoint to load),
        ``.epochs``, ``.selection``.
    """
    from .workflows.training import train as _train

    if isinstance(config, Config):
        if overrides:
            raise ConfigError("overrides apply to a config file or preset name; got a Config "
                              "(use dataclasses.replace, or pass the file)")
        cfg = config
    else:
        cfg = load_config(config, list(overrides or []))
    return _train(cfg, fold, out, quiet)


def evaluate(
    run: str | Path,
    *,
    which: str = "best",
    steps: Optional[int] = None,
    samples: Optional[int] = None,
    quiet: bool = True,
    write: bool = True,
    sampler: Optional[str] = None,
    views: Optional[str] = None,
    fast: bool = False,
) -> dict[str, Any]:
    """Score a run's checkpoint (``best`` or ``last``) on the test videos of its fold (the
    ``evaluate`` command): ``{"rgb": M, "flow": M, "fused": M, ...}`` with each ``M`` holding
    acc, edit, f1@10, f1@25 and f1@50 in percent, and how it sampled (``sampler``, ``steps``,
    ``samples``, ``views``; overrides as in :func:`predict`). ``write`` also writes
    ``results.json`` and ``predictions/`` into the run (what ``report`` shows)."""
    from .workflows.evaluation import evaluate_run

    return evaluate_run(run, which, quiet, steps, samples, write, sampler=sampler, views=views,
                        fast=fast)


# ----------------------------------------------------------------------------- helpers


def _sampling_config(cfg: Config, seed: Optional[int], **sampling: Any) -> Config:
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed = {seed!r} is invalid; expected an integer")
        cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, seed=int(seed)))
    return with_sampling(cfg, **sampling)


def _orientation(value: Orientation | str, what: str) -> Orientation:
    try:
        return Orientation(value)
    except ValueError:
        raise ConfigError(f"{what} = {value!r} is invalid; expected \"DxT\" or \"TxD\"") from None


def _video(model: LoadedModel, features: Mapping[str, FeatureInput], name: Optional[str],
           layout: Orientation, file_layouts: Mapping[str, Orientation]) -> Video:
    """One video's checked, aligned ``(D, T)`` features."""
    cfg, dims = model.config, dict(model.checkpoint.stream_dims)
    missing = [s for s in dims if s not in features]
    unknown = [s for s in features if s not in dims]
    if missing or unknown:
        raise ConfigError(
            f"features name the streams {sorted(features)}; expected exactly the checkpoint's "
            f"streams {list(dims)} (missing {missing}, unknown {unknown})"
        )
    raw = {s: _read(features[s], s, _stream_spec(cfg, s), dims[s], file_layouts.get(s), layout)
           for s in dims}
    first = next(iter(dims))
    paths = [v for v in features.values() if isinstance(v, (str, Path))]
    video_name = name or (Path(paths[0]).stem if paths else "video")
    length = raw[first].shape[1]
    aligned = {
        s: align_to_labels(f, length, cfg.dataset.length_tolerance, video_name, s,
                           reference=f"the {first} features")
        for s, f in raw.items()
    }
    return Video(video_name, aligned, None)


def _predict_chunk(model: LoadedModel, videos: list[Video], cfg: Config, fps: float,
                   progress: bool) -> Iterator[Prediction]:
    device = next(model.model.parameters()).device
    loaded = dataclasses.replace(model, config=cfg)  # the uncertainty reads its fusion input
    for result in _predict(model.model, videos, cfg, model.fusion_weights, model.postprocess,
                           device, progress, "predict", model.fusion_method):
        yield _prediction(loaded, result, cfg, fps)


def _prediction(model: LoadedModel, result: VideoPrediction, cfg: Config,
                fps: float) -> Prediction:
    outputs = video_outputs(result, model)
    names = model.label_names
    return Prediction(
        name=result.name,
        class_names=names,
        labels=outputs.labels,
        probs=outputs.probs,
        stream_probs=dict(result.video.probs),
        stream_labels=outputs.stream_labels,
        segments=segment_records(outputs.labels, outputs.probs, names, fps, outputs.uncertainty),
        fps=fps,
        uncertainty=outputs.uncertainty,
        samples=cfg.eval.samples,
        steps=cfg.eval.steps,
        sampler=cfg.eval.sampler,
        views=cfg.eval.views.value,
    )


def _read(
    value: FeatureInput,
    stream: str,
    spec: StreamDataConfig,
    dim: int,
    orientation: Optional[Orientation],
    layout: Orientation = Orientation.DxT,
) -> np.ndarray:
    """One stream's features as float32 ``(D, T)``, checked like files are; arrays and tensors
    are read in ``layout``."""
    if isinstance(value, (str, Path)):
        return read_feature_file(Path(value), stream, spec, dim, orientation)
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu").numpy()
    array = np.asarray(value)
    what = f"{stream} features (array, {layout.value})"
    if array.ndim != 2 or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise DataError(
            f"{what} have shape {array.shape} and dtype {array.dtype}; expected a 2-D array of "
            "numbers"
        )
    if layout is Orientation.TxD:
        array = array.T  # (T, D) -> (D, T)
    if array.shape[0] != dim:
        other = "TxD" if layout is Orientation.DxT else "DxT"
        hint = (f" (transposed? pass layout=\"{other}\")" if array.shape[1] == dim else "")
        shown = array.shape if layout is Orientation.DxT else array.shape[::-1]
        expected = f"({dim}, T)" if layout is Orientation.DxT else f"(T, {dim})"
        raise DataError(
            f"{what} have shape {shown}; expected {expected} for the checkpoint's "
            f"{stream} stream{hint}"
        )
    feats = np.ascontiguousarray(array, dtype=np.float32)
    check_features(feats, Path(f"<{stream} array>"), what, None, Orientation.DxT, None)
    return feats


def _stream_spec(cfg: Config, stream: str) -> StreamDataConfig:
    """The data section of one stream (``dataset.streams.NAME`` or ``dataset.NAME``)."""
    streams = getattr(cfg.dataset, "streams", None)
    return streams[stream] if streams is not None else getattr(cfg.dataset, stream)
