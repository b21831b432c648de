"""Data layer: the MS-TCN layout on disk -> videos in memory -> padded two-stream batches.

- :mod:`.layout`: ``mapping.txt``, ``splits/*.bundle``, ``groundTruth/*.txt``, validation carve-out
- :mod:`.features`: per-stream feature files (I3D halves or folders, orientation, checks, alignment)
- :mod:`.temporal`: sample-rate views, upsampling back, soft boundary targets
- :mod:`.dataset`: :class:`Video`, :class:`View`, :class:`TrainDataset`, offset views
- :mod:`.collate`: :class:`Batch` (padding + mask)
- :mod:`.demo`: the synthetic two-stream demo dataset
"""

from .collate import IGNORE_INDEX, Batch, collate
from .dataset import (
    TrainDataset,
    Video,
    View,
    class_counts,
    load_videos,
    make_view,
    offset_views,
    stream_dims,
    view_offsets,
)
from .demo import make_demo
from .features import align_to_labels, feature_path, load_stream
from .layout import LabelMap, read_labels, read_mapping, read_split, train_val_split
from .temporal import average_views, boundary_target, num_view_frames, restore_full_rate, subsample

__all__ = [
    "IGNORE_INDEX",
    "Batch",
    "LabelMap",
    "View",
    "TrainDataset",
    "Video",
    "align_to_labels",
    "average_views",
    "boundary_target",
    "class_counts",
    "collate",
    "feature_path",
    "load_stream",
    "load_videos",
    "make_demo",
    "make_view",
    "num_view_frames",
    "offset_views",
    "read_labels",
    "read_mapping",
    "read_split",
    "restore_full_rate",
    "stream_dims",
    "subsample",
    "train_val_split",
    "view_offsets",
]
