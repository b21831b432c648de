"""The real label sets beside the project (``../shared/data/<dataset>``) and DiffAct's
pipeline oracle on them, read for the parity tests (they skip cleanly when absent)."""

from __future__ import annotations

import tarfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _shared import require_shared
from twostream_das.data.layout import read_mapping


def pipeline_oracle() -> dict[str, Any]:
    """``diffact_oracle/pipeline.pt`` (its README gives every key)."""
    path = require_shared("data/diffact_oracle/pipeline.pt")
    oracle = torch.load(path, weights_only=True)
    assert oracle["format"] == "diffact-pipeline-oracle-v1"
    return oracle


@cache
def _label_texts(dataset: str) -> dict[str, str]:
    """video -> groundTruth text, from ``groundTruth/`` or ``groundTruth.tar.gz`` (read in memory,
    nothing extracted)."""
    root = require_shared(f"data/{dataset}")
    folder = root / "groundTruth"
    if folder.is_dir():
        return {p.stem: p.read_text() for p in folder.glob("*.txt")}
    texts = {}
    with tarfile.open(root / "groundTruth.tar.gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".txt"):
                handle = tar.extractfile(member)
                assert handle is not None
                texts[Path(member.name).stem] = handle.read().decode()
    return texts


def real_labels(dataset: str, videos: list[str]) -> dict[str, np.ndarray]:
    """video -> (T,) int64 class ids in ``mapping.txt`` order."""
    label_map = read_mapping(require_shared(f"data/{dataset}") / "mapping.txt")
    texts = _label_texts(dataset)
    return {
        v: np.array([label_map.index(n) for n in texts[v].split()], dtype=np.int64)
        for v in videos
    }
