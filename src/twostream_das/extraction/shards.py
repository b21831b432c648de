"""Which process extracts which videos: disjoint shares balanced by frame count.

Under ``torchrun`` every rank lists the same videos, reads their frame counts from the container
headers (no decoding) and computes the same plan, so no rank has to tell the others anything:
videos longest first (ties by name), each onto the rank with the fewest frames so far (ties: the
lower rank). A rerun computes the same plan, so a killed rank's share is done by the same rank
next time, and complete files are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..distributed import balance
from .video import probe_video

__all__ = ["balance", "frame_counts", "rank_share"]


def frame_counts(videos: Sequence[Path]) -> dict[Path, int]:
    """Frames per video from the container metadata: the declared count, else duration x fps,
    else 1 (a video that says nothing still goes somewhere)."""
    counts: dict[Path, int] = {}
    for video in videos:
        info = probe_video(video)
        counts[video] = info.num_frames or round(info.duration_s * info.fps) or 1
    return counts


def rank_share(videos: Sequence[Path], rank: int, world: int) -> list[Path]:
    """The videos of ``rank`` out of ``world`` (all of them for one rank), longest first."""
    if world == 1:
        return list(videos)
    counts = frame_counts(videos)
    by_name = {v.name: v for v in videos}
    return [by_name[n] for n in balance({v.name: counts[v] for v in videos}, world)[rank]]
