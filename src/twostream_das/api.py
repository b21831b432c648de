"""The Python API for notebooks and scripts: load a checkpoint, segment one video.

::

    import twostream_das as tsd

    model = tsd.load_model("runs/gtea/split1/checkpoints/best.pt", device="cpu")
    result = tsd.predict(model, {"rgb": rgb_features, "flow": "feats/flow/video1.npy"})
    result.segments[0]          # Segment(label='take', start_frame=0, end_frame=41, ...)
    result.probs.shape          # (C, T): fused per-frame class probabilities

It is the path ``predict`` (the command) and ``evaluate`` run, with the checkpoint's selected
fusion weights and post-processing: the same features give the same result as the command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from .config import Config, Orientation, StreamDataConfig
from .data.dataset import Video
from .data.features import align_to_labels, check_features
from .errors import ConfigError, DataError
from .inference import LoadedModel
from .inference import load_model as _load_model
from .inference import predict as _predict
from .io import SegmentRecord, segment_records
from .runtime import resolve_device
from .uncertainty import normalize_frames
from .workflows.prediction import read_feature_file

Segment = SegmentRecord
"""One segment: ``label``, ``label_id``, ``start_frame`` (inclusive), ``end_frame`` (exclusive),
``num_frames``, ``start_s``, ``end_s`` and ``confidence`` (the mean fused probability of its
label over its frames)."""

FeatureInput = Union[np.ndarray, torch.Tensor, str, Path]
"""One stream's features: an array ``(D, T)``, or a ``.npy`` file read as the checkpoint's
config says (its orientation; the I3D half of a 2048-row file)."""


@dataclass(frozen=True)
class Prediction:
    """What :func:`predict` returns for one video.

    Attributes:
        name: the video's name (given, or the first file's stem).
        class_names: the checkpoint's classes in id order (``C``).
        labels: (T,) int64 class ids, fused then post-processed.
        probs: (C, T) float32 fused probabilities, each frame summing to 1 (before
            post-processing).
        stream_probs: stream -> (C, T) float32 probabilities of that stream alone.
        stream_labels: stream -> (T,) int64 labels of that stream alone (post-processed).
        segments: the segments of ``labels`` with times (``fps``) and confidences.
        fps: frames per second used for the segment times.
    """

    name: str
    class_names: list[str]
    labels: np.ndarray
    probs: np.ndarray
    stream_probs: dict[str, np.ndarray]
    stream_labels: dict[str, np.ndarray]
    segments: list[Segment]
    fps: float

    @property
    def label_names(self) -> list[str]:
        """(T,) the class name of every frame."""
        return [self.class_names[i] for i in self.labels.tolist()]


def load_model(checkpoint: str | Path, device: str | torch.device = "auto") -> LoadedModel:
    """Rebuild the model of a checkpoint (``torch.load(weights_only=True)``), in eval mode.

    Args:
        checkpoint: e.g. ``RUN_DIR/checkpoints/best.pt``.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` or a
            ``torch.device``.

    Returns:
        A :class:`~twostream_das.inference.LoadedModel`: ``.model``, ``.config``,
        ``.label_names``, ``.fusion_weights``, ``.postprocess`` and the stored ``.checkpoint``.

    Raises:
        CheckpointError: missing, unreadable or foreign file.
        ConfigError: an unknown device.
    """
    target = device if isinstance(device, torch.device) else resolve_device(str(device))
    return _load_model(checkpoint, target)


def predict(
    model: LoadedModel,
    features: Mapping[str, FeatureInput],
    *,
    name: Optional[str] = None,
    fps: Optional[float] = None,
    orientations: Optional[Mapping[str, Orientation | str]] = None,
) -> Prediction:
    """Segment one video with a loaded model.

    Args:
        model: from :func:`load_model`.
        features: stream name -> features, one entry for every stream of the checkpoint
            (``model.checkpoint.stream_dims``). Arrays and tensors are ``(D, T)``; a path is a
            ``.npy`` file stored as the checkpoint's config says, or as ``orientations`` says.
            Streams are aligned to the first one within ``dataset.length_tolerance`` frames.
        name: the video's name (default: the first file's stem, else ``video``).
        fps: frames per second for the segment times (default: the config's ``dataset.fps``).
        orientations: stream -> ``DxT`` / ``TxD`` for files (default: the config's).

    Returns:
        A :class:`Prediction`.

    Raises:
        ConfigError: streams missing or unknown, or a bad ``fps``.
        DataError: a bad file or array (dimension, NaN, no frames, lengths), as the command says.
    """
    cfg, dims = model.config, dict(model.checkpoint.stream_dims)
    missing = [s for s in dims if s not in features]
    unknown = [s for s in features if s not in dims]
    if missing or unknown:
        raise ConfigError(
            f"features name the streams {sorted(features)}; expected exactly the checkpoint's "
            f"streams {list(dims)} (missing {missing}, unknown {unknown})"
        )
    if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps < float("inf")):
        raise ConfigError(f"fps = {fps!r} is invalid; expected a finite number > 0")
    layouts = {s: Orientation(v) for s, v in (orientations or {}).items()}
    raw = {s: _read(features[s], s, _stream_spec(cfg, s), dims[s], layouts.get(s)) for s in dims}
    first = next(iter(dims))
    paths = [v for v in features.values() if isinstance(v, (str, Path))]
    video_name = name or (Path(paths[0]).stem if paths else "video")
    length = raw[first].shape[1]
    aligned = {
        s: align_to_labels(f, length, cfg.dataset.length_tolerance, video_name, s,
                           reference=f"the {first} features")
        for s, f in raw.items()
    }
    video = Video(video_name, aligned, None)
    (result,) = _predict(model.model, [video], cfg, model.fusion_weights, model.postprocess,
                         next(model.model.parameters()).device, method=model.fusion_method)
    probs = normalize_frames(result.decision.fused_probs)  # (C, T), each frame sums to 1
    fps = cfg.dataset.fps if fps is None else float(fps)
    names = model.label_names
    return Prediction(
        name=video_name,
        class_names=names,
        labels=result.decision.labels,
        probs=probs,
        stream_probs=dict(result.video.probs),
        stream_labels=dict(result.decision.stream_labels),
        segments=segment_records(result.decision.labels, probs, names, fps),
        fps=fps,
    )


def _read(
    value: FeatureInput,
    stream: str,
    spec: StreamDataConfig,
    dim: int,
    orientation: Optional[Orientation],
) -> np.ndarray:
    """One stream's features as float32 ``(D, T)``, checked like files are."""
    if isinstance(value, (str, Path)):
        return read_feature_file(Path(value), stream, spec, dim, orientation)
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu").numpy()
    array = np.asarray(value)
    what = f"{stream} features (array)"
    if array.ndim != 2 or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise DataError(
            f"{what} have shape {array.shape} and dtype {array.dtype}; expected a (D, T) array of "
            "numbers"
        )
    if array.shape[0] != dim:
        hint = " (transposed? the array is (T, D); pass array.T)" if array.shape[1] == dim else ""
        raise DataError(
            f"{what} have shape {array.shape}; expected ({dim}, T) for the checkpoint's "
            f"{stream} stream{hint}"
        )
    feats = np.ascontiguousarray(array, dtype=np.float32)
    check_features(feats, Path(f"<{stream} array>"), what, None, Orientation.DxT, None)
    return feats


def _stream_spec(cfg: Config, stream: str) -> StreamDataConfig:
    """The data section of one stream (``dataset.streams.NAME`` or ``dataset.NAME``)."""
    streams = getattr(cfg.dataset, "streams", None)
    return streams[stream] if streams is not None else getattr(cfg.dataset, stream)
