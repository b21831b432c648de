"""Batching: samples of different lengths padded to the longest, plus a padding mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from .dataset import Sample

IGNORE_INDEX = -100  # label of padded (and unlabelled) frames; cross-entropy skips it


@dataclass(frozen=True, eq=False)
class Batch:
    """A padded batch of ``B`` samples, ``T`` = the longest sample.

    Attributes:
        names: (B,) video names.
        features: stream -> (B, D_s, T) float32, zero at padding.
        labels: (B, T) int64, ``IGNORE_INDEX`` (-100) at padding and for unlabelled samples.
        boundary: (B, T) float32 soft boundary target, 0 at padding.
        mask: (B, T) bool, True = real frame.
        offsets: (B,) offset of each sample's view.
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
        """(B,) int64 real frames per sample."""
        return self.mask.sum(dim=1)


def collate(samples: Sequence[Sample]) -> Batch:
    """Pad ``samples`` to the longest and stack them.

    Padding: features 0, labels -100, boundary 0, mask False.

    Raises:
        ValueError: no samples, or samples with different streams or stream dimensions.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    streams = list(samples[0].features)
    size, longest = len(samples), max(s.num_frames for s in samples)
    features = {
        s: samples[0].features[s].new_zeros(size, samples[0].features[s].shape[0], longest)
        for s in streams
    }  # s -> (B, D_s, T)
    labels = torch.full((size, longest), IGNORE_INDEX, dtype=torch.long)  # (B, T)
    boundary = torch.zeros(size, longest, dtype=torch.float32)  # (B, T)
    mask = torch.zeros(size, longest, dtype=torch.bool)  # (B, T)
    for b, sample in enumerate(samples):
        length = sample.num_frames
        if list(sample.features) != streams:
            raise ValueError(
                f"sample {sample.name!r} has streams {list(sample.features)}, expected {streams}"
            )
        for s in streams:
            feats = sample.features[s]  # (D_s, T_b)
            if feats.shape != (features[s].shape[1], length):
                raise ValueError(
                    f"sample {sample.name!r} stream {s} has shape {tuple(feats.shape)}, expected "
                    f"({features[s].shape[1]}, {length})"
                )
            features[s][b, :, :length] = feats
        if sample.labels is not None:
            labels[b, :length] = sample.labels
        boundary[b, :length] = sample.boundary
        mask[b, :length] = True
    names = [s.name for s in samples]
    return Batch(names, features, labels, boundary, mask, [s.offset for s in samples])
