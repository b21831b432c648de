"""Videos in memory and the samples the model sees.

A :class:`Video` holds every configured stream at full frame rate, already aligned to the labels. A
:class:`View` is one offset view of a video (``dataset.sample_rate``), as tensors, with its soft
boundary target. ``dataset.boundary_sigma`` is given in full-rate frames: the target is smoothed
on the full-rate labels, then subsampled per offset and divided by its maximum (DiffAct).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import DatasetConfig, Views
from ..errors import DataError
from .features import align_to_labels, feature_path, load_stream
from .layout import LabelMap, ground_truth_path, read_labels
from .temporal import boundary_target, num_view_frames, subsample, view_boundary_target

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class Video:
    """One video at full frame rate.

    Attributes:
        name: video name (file stem).
        features: stream -> (D_s, T) float32.
        labels: (T,) int64 class ids, or None for unlabelled videos.
    """

    name: str
    features: dict[str, np.ndarray]
    labels: Optional[np.ndarray]

    @property
    def num_frames(self) -> int:
        if self.labels is not None:
            return int(self.labels.shape[0])
        return int(next(iter(self.features.values())).shape[1])


@dataclass(frozen=True, eq=False)
class View:
    """One offset view of a video, ready for :func:`~twostream_das.data.collate.collate`.

    Attributes:
        name: video name.
        features: stream -> (D_s, T_s) float32 tensor.
        labels: (T_s,) int64 tensor, or None.
        boundary: (T_s,) float32 soft boundary target (zeros without labels).
        offset: the view's first full-rate frame, in [0, sample_rate).
    """

    name: str
    features: dict[str, torch.Tensor]
    labels: Optional[torch.Tensor]
    boundary: torch.Tensor
    offset: int

    @property
    def num_frames(self) -> int:
        return int(self.boundary.shape[0])


def load_videos(
    data_cfg: DatasetConfig,
    names: Sequence[str],
    label_map: LabelMap,
    with_labels: bool = True,
    expected_dims: Optional[Mapping[str, int]] = None,
    expected_from: str = "the training videos",
) -> list[Video]:
    """Read the labels and every stream of ``data_cfg.streams`` of ``names`` from ``data_cfg.root``.

    Streams are aligned to the label length (or, without labels, to the first stream's length)
    within ``data_cfg.length_tolerance`` frames. Without a configured ``dim`` every video of a
    stream must have the same dimension as the first one, or as ``expected_dims`` (e.g. the
    training videos' or a checkpoint's, named ``expected_from`` in messages), so a mismatch
    stops here and not in the first forward pass.

    Raises:
        DataError: any missing or malformed file (see :mod:`.layout` and :mod:`.features`).
    """
    root = Path(data_cfg.root)
    videos: list[Video] = []
    dims: dict[str, tuple[int, str]] = {  # stream -> (dim, where it came from)
        s: (int(d), expected_from) for s, d in (expected_dims or {}).items()
    }
    for name in names:
        labels = read_labels(ground_truth_path(root, name), label_map) if with_labels else None
        features: dict[str, np.ndarray] = {}
        for stream, spec in data_cfg.streams.items():
            feats = load_stream(root, name, spec, stream)  # (D, T')
            _check_same_dim(dims, stream, feats.shape[0], name, feature_path(root, name, spec))
            num_frames = len(labels) if labels is not None else _reference_length(features, feats)
            first = next(iter(features), stream)  # without labels: the first stream's length
            reference = "the labels" if labels is not None else f"the {first} features"
            features[stream] = align_to_labels(
                feats, num_frames, data_cfg.length_tolerance, name, stream,
                feature_path(root, name, spec), reference,
            )
        videos.append(Video(name, features, labels))
    logger.debug("loaded %d videos from %s", len(videos), root)
    return videos


def _reference_length(done: dict[str, np.ndarray], feats: np.ndarray) -> int:
    """Without labels, every stream is aligned to the first stream's length."""
    return next(iter(done.values())).shape[1] if done else feats.shape[1]


def _check_same_dim(
    dims: dict[str, tuple[int, str]], stream: str, dim: int, video: str, path: Path
) -> None:
    if stream not in dims:
        dims[stream] = (dim, f"video {video!r}")
        return
    expected, first = dims[stream]
    if dim != expected:
        raise DataError(
            f"{stream} features file {path} has dimension {dim}; expected {expected} like "
            f"{first} (all videos of a stream must agree; set dataset.streams.{stream}.dim to "
            f"pin it)"
        )


def stream_dims(videos: Sequence[Video]) -> dict[str, int]:
    """Feature dimension of each stream, checked to agree over ``videos``.

    Raises:
        DataError: no videos, or two videos disagree.
    """
    if not videos:
        raise DataError("no videos to read stream dimensions from; expected at least one video")
    dims = {s: int(f.shape[0]) for s, f in videos[0].features.items()}
    for video in videos[1:]:
        for stream, feats in video.features.items():
            if feats.shape[0] != dims.get(stream):
                raise DataError(
                    f"{stream} features of video {video.name!r} have dimension {feats.shape[0]}; "
                    f"expected {dims.get(stream)} like video {videos[0].name!r}"
                )
    return dims


def class_counts(videos: Sequence[Video], num_classes: int) -> np.ndarray:
    """Frames per class over the labelled videos.

    Returns:
        (C,) int64.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for video in videos:
        if video.labels is None:
            continue
        if video.labels.size and (video.labels.min() < 0 or video.labels.max() >= num_classes):
            raise DataError(
                f"video {video.name!r} has label ids in [{video.labels.min()}, "
                f"{video.labels.max()}]; expected ids in [0, {num_classes - 1}]"
            )
        counts += np.bincount(video.labels, minlength=num_classes)
    return counts


def make_view(video: Video, sample_rate: int, offset: int, boundary_sigma: float) -> View:
    """Offset view ``offset`` of ``video`` as tensors (copies; the video is not shared).

    ``boundary_sigma`` is in full-rate frames: the target is smoothed at the full rate, then
    subsampled (:func:`~twostream_das.data.temporal.view_boundary_target`).
    """
    features = {
        s: torch.from_numpy(np.array(subsample(f, sample_rate, offset), np.float32))
        for s, f in video.features.items()
    }  # s -> (D_s, T_s), copies
    length = num_view_frames(video.num_frames, sample_rate, offset)
    if video.labels is None:
        return View(video.name, features, None, torch.zeros(length), offset)
    labels = np.array(subsample(video.labels, sample_rate, offset), np.int64)  # (T_s,) copy
    full = boundary_target(video.labels, boundary_sigma)  # (T,) at the full rate
    boundary = view_boundary_target(full, sample_rate, offset)  # (T_s,) float32
    return View(
        video.name, features, torch.from_numpy(labels), torch.from_numpy(boundary), offset
    )


def view_offsets(num_frames: int, sample_rate: int, views: Views = Views.ALL) -> list[int]:
    """The temporal offsets inference samples for a video of ``num_frames`` frames.

    ``all``: every offset ``0 .. r-1`` (offsets past the last frame, in a video shorter than
    the rate, have no frames and are left out). ``middle``: offset ``r // 2`` alone, the view
    DiffAct's ``decoder-noagg`` test mode samples (the last frame's offset in a video of at
    most ``r // 2`` frames). At r = 1 both are ``[0]``. E.g. T = 20, r = 8: all ``[0 .. 7]``,
    middle ``[4]`` (frames 4 and 12).
    """
    if views is Views.MIDDLE:
        return [min(sample_rate // 2, num_frames - 1)]
    return list(range(min(sample_rate, num_frames)))


def offset_views(
    video: Video, sample_rate: int, boundary_sigma: float, views: Views = Views.ALL
) -> list[View]:
    """The offset views of ``video`` that inference samples (:func:`view_offsets`)."""
    offsets = view_offsets(video.num_frames, sample_rate, views)
    return [make_view(video, sample_rate, o, boundary_sigma) for o in offsets]


class TrainDataset(Dataset):
    """Training samples: one randomly drawn offset view per video and item.

    The offset of item ``i`` comes from ``numpy.random.default_rng([seed, epoch, i])``, so it
    depends only on ``(seed, epoch, i)``: reproducible, independent of the order items are
    read in and of data-loader workers, and a run resumed at an epoch redraws exactly the same
    offsets. Both streams see the same offset. Call :meth:`set_epoch` at every epoch.

    Args:
        videos: the training videos (with labels).
        sample_rate: ``dataset.sample_rate``.
        boundary_sigma: ``dataset.boundary_sigma`` in full-rate frames.
        seed: non-negative base seed.
    """

    def __init__(
        self, videos: Sequence[Video], sample_rate: int, boundary_sigma: float, seed: int
    ) -> None:
        if sample_rate < 1:
            raise ValueError(f"sample_rate must be >= 1, got {sample_rate}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        missing = [v.name for v in videos if v.labels is None]
        if missing:
            raise DataError(
                f"training video {missing[0]!r} has no labels; expected labelled videos"
            )
        self.videos = list(videos)
        self.sample_rate = sample_rate
        self.boundary_sigma = boundary_sigma
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the offsets of epoch ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def offset(self, index: int) -> int:
        """The offset item ``index`` gets in the current epoch."""
        choices = min(self.sample_rate, self.videos[index].num_frames)
        if choices == 1:
            return 0
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return int(rng.integers(choices))

    def __getitem__(self, index: int) -> View:
        video = self.videos[index]
        return make_view(video, self.sample_rate, self.offset(index), self.boundary_sigma)
