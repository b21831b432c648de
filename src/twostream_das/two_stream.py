"""2s-DAS: two :class:`DiffusionStream` s, one per modality, built from one config.

The streams are identical in structure, with their own input dimension and weights; training
minimises ``L = L_rgb + L_flow`` in one backward pass; inference returns each stream's
probabilities, which :func:`twostream_das.fusion.fuse` combines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Optional

import torch
from torch import nn

from .config import STREAMS, Config
from .diffusion.ddim import Generators
from .stream import DiffusionStream

if TYPE_CHECKING:
    from .data.collate import Batch


class TwoStreamLoss(NamedTuple):
    """Attributes:
    total: 0-dim, L_rgb + L_flow.
    terms: ``"<stream>/<term>"`` -> unweighted term, and ``"<stream>/total"`` -> L_stream;
        detached 0-dim tensors.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class TwoStreamModel(nn.Module):
    """Args: streams: one :class:`DiffusionStream` per name of ``STREAMS``."""

    def __init__(self, streams: Mapping[str, DiffusionStream]) -> None:
        super().__init__()
        if set(streams) != set(STREAMS):
            raise ValueError(f"streams {sorted(streams)} must be exactly {STREAMS}")
        self.streams = nn.ModuleDict({s: streams[s] for s in STREAMS})

    @classmethod
    def from_config(
        cls, cfg: Config, in_dims: Mapping[str, int], num_classes: int
    ) -> TwoStreamModel:
        """Args: in_dims: stream -> feature dimension (read from the data); num_classes: C."""
        if set(in_dims) != set(STREAMS):
            raise ValueError(f"in_dims {dict(in_dims)} must have exactly the keys {STREAMS}")
        return cls({s: DiffusionStream.from_config(cfg, in_dims[s], num_classes) for s in STREAMS})

    def forward(
        self,
        batch: Batch,
        class_weights: Optional[torch.Tensor],
        generator: Generators,
    ) -> TwoStreamLoss:
        """Same as :meth:`loss`: ``forward`` is what ``DistributedDataParallel`` wraps."""
        return self.loss(batch, class_weights, generator)

    def loss(
        self,
        batch: Batch,
        class_weights: Optional[torch.Tensor],
        generator: Generators,
    ) -> TwoStreamLoss:
        """L_rgb + L_flow on one batch (both streams see the same samples).

        ``generator``: one, or one per sample (see :meth:`DiffusionStream.loss`); the streams
        draw from it in ``STREAMS`` order.
        """
        total: Optional[torch.Tensor] = None
        terms: dict[str, torch.Tensor] = {}
        for name in STREAMS:
            out = self.streams[name].loss(batch.features[name], batch, class_weights, generator)
            total = out.total if total is None else total + out.total
            terms.update({f"{name}/{key}": value for key, value in out.terms.items()})
            terms[f"{name}/total"] = out.total.detach()
        assert total is not None
        return TwoStreamLoss(total, terms)

    def predict_proba(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        generators: Sequence[torch.Generator],
    ) -> dict[str, torch.Tensor]:
        """Each stream's DDIM probabilities.

        Args:
            features: stream -> (B, D_s, T).
            mask: (B, T) bool.
            generators: one per video, shared by the streams (``STREAMS`` order: the RGB stream
                draws first, then FLOW continues from the same generators).

        Returns:
            stream -> (B, C, T) float32 probabilities.
        """
        return {s: self.streams[s].predict_proba(features[s], mask, generators) for s in STREAMS}
