"""Batching: offset views of different lengths padded to the longest, plus a padding mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from .dataset import View

IGNORE_INDEX = -100  # label of padded (and unlabelled) frames; cross-entropy skips it


@dataclass(frozen=True, eq=False)
class Batch:
    """A padded batch of ``B`` views, ``T`` = the longest view.

    Attributes:
        names: (B,) video names.
        features: stream -> (B, D_s, T) float32, zero at padding.
        labels: (B, T) int64, ``IGNORE_INDEX`` (-100) at padding and for unlabelled views.
        boundary: (B, T) float32 soft boundary target, 0 at padding.
        mask: (B, T) bool, True = real frame.
        offsets: (B,) the offset of each view.
    """

    names: list[str]
    features: dict[str, torch.Tensor]
    labels: torch.Tensor
    boundary: torch.Tensor
    mask: torch.Tensor
    offsets: list[int]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch with every tensor on ``device``."""
        return replace(
            self,
            features={s: f.to(device, non_blocking=non_blocking) for s, f in self.features.items()},
            labels=self.labels.to(device, non_blocking=non_blocking),
            boundary=self.boundary.to(device, non_blocking=non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> Batch:
        """Page-locked copies (``DataLoader(pin_memory=True)`` calls this)."""
        return replace(
            self,
            features={s: f.pin_memory() for s, f in self.features.items()},
            labels=self.labels.pin_memory(),
            boundary=self.boundary.pin_memory(),
            mask=self.mask.pin_memory(),
        )

    @property
    def lengths(self) -> torch.Tensor:
        """(B,) int64 real frames per view."""
        return self.mask.sum(dim=1)


def collate(views: Sequence[View]) -> Batch:
    """Pad ``views`` to the longest and stack them.

    Padding: features 0, labels -100, boundary 0, mask False.

    Raises:
        ValueError: no views, or views with different streams or stream dimensions.
    """
    if not views:
        raise ValueError("collate needs at least one view")
    streams = list(views[0].features)
    size, longest = len(views), max(s.num_frames for s in views)
    features = {
        s: views[0].features[s].new_zeros(size, views[0].features[s].shape[0], longest)
        for s in streams
    }  # s -> (B, D_s, T)
    labels = torch.full((size, longest), IGNORE_INDEX, dtype=torch.long)  # (B, T)
    boundary = torch.zeros(size, longest, dtype=torch.float32)  # (B, T)
    mask = torch.zeros(size, longest, dtype=torch.bool)  # (B, T)
    for b, view in enumerate(views):
        length = view.num_frames
        if list(view.features) != streams:
            raise ValueError(
                f"view {view.name!r} has streams {list(view.features)}, expected {streams}"
            )
        for s in streams:
            feats = view.features[s]  # (D_s, T_b)
            if feats.shape != (features[s].shape[1], length):
                raise ValueError(
                    f"view {view.name!r} stream {s} has shape {tuple(feats.shape)}, expected "
                    f"({features[s].shape[1]}, {length})"
                )
            features[s][b, :, :length] = feats
        if view.labels is not None:
            labels[b, :length] = view.labels
        boundary[b, :length] = view.boundary
        mask[b, :length] = True
    names = [s.name for s in views]
    return Batch(names, features, labels, boundary, mask, [s.offset for s in views])
