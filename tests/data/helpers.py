"""Helpers of the data-layer tests: a tiny dataset on disk (MS-TCN layout, two feature folders)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from twostream_das.config import DatasetConfig, Orientation, StreamDataConfig

CLASSES = ("background", "cut", "pour")
LABELS = {  # video -> labels (class names), odd lengths on purpose
    "v1": ["background"] * 2 + ["cut"] * 3 + ["background"] * 2,  # T = 7
    "v2": ["pour"] * 5,  # a single segment, T = 5
    "v3": ["cut"] * 4 + ["pour"] * 5,  # T = 9
}
RGB_DIM, FLOW_DIM = 4, 3


def write_lines(path: Path, lines: Sequence[str], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}{newline}" for line in lines).encode("utf-8"))
    return path


def rgb_features(video: str) -> np.ndarray:
    """(RGB_DIM, T) with value 100 * dim + frame (easy to check after any slicing)."""
    t = len(LABELS[video])
    return (100.0 * np.arange(RGB_DIM)[:, None] + np.arange(t)[None, :]).astype(np.float32)


def flow_features(video: str) -> np.ndarray:
    """(FLOW_DIM, T) with value -(100 * dim + frame); stored on disk as (T, FLOW_DIM)."""
    t = len(LABELS[video])
    return -(100.0 * np.arange(FLOW_DIM)[:, None] + np.arange(t)[None, :]).astype(np.float32)


def write_tiny(root: Path) -> Path:
    write_lines(root / "mapping.txt", [f"{i} {c}" for i, c in enumerate(CLASSES)])
    for video, labels in LABELS.items():
        write_lines(root / "groundTruth" / f"{video}.txt", labels)
        (root / "features_rgb").mkdir(parents=True, exist_ok=True)
        (root / "features_flow").mkdir(parents=True, exist_ok=True)
        np.save(root / "features_rgb" / f"{video}.npy", rgb_features(video))
        np.save(root / "features_flow" / f"{video}.npy", flow_features(video).T)  # TxD on disk
    write_lines(root / "splits" / "train.split1.bundle", ["v1.txt", "v2.txt"])
    write_lines(root / "splits" / "test.split1.bundle", ["v3.txt"])
    return root


def tiny_config(root: Path, **changes: object) -> DatasetConfig:
    """Data config of the tiny dataset: RGB stored DxT, FLOW stored TxD."""
    cfg = DatasetConfig(
        root=str(root),
        streams={
            "rgb": StreamDataConfig(folder="features_rgb", orientation=Orientation.DxT),
            "flow": StreamDataConfig(folder="features_flow", orientation=Orientation.TxD),
        },
    )
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]
