"""Per-channel feature standardisation, fitted on the fold's training videos.

Features of users' own data can have any scale: raw skeleton coordinates of -800..2100 trained
with a first loss of 452. With ``dataset.standardize`` on, channel ``d`` of every
stream is mapped to ``(x_d - mean_d) / std_d``, with the mean and the (population) standard
deviation of that channel over every frame of the fold's *training* videos, never validation or
test videos. The statistics are buffers of the model (``standardizer.<stream>_mean`` /
``standardizer.<stream>_std``, float32 ``(D_s,)``), so every checkpoint carries them as plain
tensors and training, validation, ``evaluate``, ``predict`` and the Python API apply the same map:
the model applies it to its own input (:class:`~twostream_das.model.multi_stream.MultiStreamModel`).
Padded frames stay 0. A channel whose training std is below :data:`MIN_STD` (constant) is only
centred (std 1).

The paper presets leave it off: the reference code feeds the features as they are (parity).
``init-config`` turns it on for new datasets. A checkpoint's config says whether its weights
hold the statistics; ``twostream-das upgrade`` sets it so in a file whose config says otherwise
(:func:`has_stored_statistics`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from ..data.dataset import Video

logger = logging.getLogger(__name__)

MIN_STD = 1e-6
"""A channel whose std over the training frames is below this is constant: it gets std 1."""

STATE_PREFIX = "standardizer."
"""Prefix of the statistics in a model's state dict (``standardizer.<stream>_mean``)."""


class FeatureStandardizer(nn.Module):
    """``(x - mean) / std`` per stream and channel; the identity until :meth:`fit`.

    Args:
        dims: stream -> feature dimension ``D_s``.
    """

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.names = list(dims)
        for stream, dim in dims.items():
            self.register_buffer(f"{stream}_mean", torch.zeros(int(dim)))  # (D_s,)
            self.register_buffer(f"{stream}_std", torch.ones(int(dim)))  # (D_s,)

    def stats(self, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean (D_s,), std (D_s,)) of one stream."""
        return getattr(self, f"{stream}_mean"), getattr(self, f"{stream}_std")

    @torch.no_grad()
    def fit(self, videos: Sequence[Video]) -> None:
        """Mean and std of every channel over all frames of ``videos`` (the training videos),
        in float64 and in two passes (mean, then squared deviations), so a constant channel
        gives std 0 rather than rounding noise.

        Raises:
            ValueError: no videos, or none with a frame.
        """
        frames = sum(v.num_frames for v in videos)
        if not frames:
            raise ValueError("no training frames to fit the feature standardisation on")
        for stream in self.names:
            total = sum(np.asarray(v.features[stream], np.float64).sum(axis=1) for v in videos)
            mean = total / frames  # (D,)
            squares = sum(
                np.square(np.asarray(v.features[stream], np.float64) - mean[:, None]).sum(axis=1)
                for v in videos
            )
            std = np.sqrt(squares / frames)  # (D,) population std
            std = np.where(std < MIN_STD, 1.0, std)
            buf_mean, buf_std = self.stats(stream)
            buf_mean.copy_(torch.from_numpy(mean))
            buf_std.copy_(torch.from_numpy(std))
        logger.info("dataset.standardize: per-channel mean and std of streams %s fitted on %d "
                    "training videos (%d frames)", self.names, len(videos), frames)

    def forward(
        self, features: Mapping[str, torch.Tensor], mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Args: features: stream -> (B, D_s, T); mask: (B, T) bool, True = real frame.

        Returns: stream -> (B, D_s, T) standardised, 0 at padded frames."""
        keep = mask[:, None, :]  # (B, 1, T)
        out = {}
        for stream, x in features.items():
            mean, std = self.stats(stream)
            y = (x - mean[None, :, None].to(x.dtype)) / std[None, :, None].to(x.dtype)
            out[stream] = y.masked_fill(~keep, 0.0)
        return out


def has_stored_statistics(weights: Mapping[str, torch.Tensor]) -> bool:
    """Whether a model state dict holds standardisation statistics."""
    return any(key.startswith(STATE_PREFIX) for key in weights)
