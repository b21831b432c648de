"""Encoder: per-frame features -> class logits + conditioning features for the decoder.

    x    = FrameDropout(ChannelDropout(features))          input dropout (training only)
    h    = Conv1x1(x)                                      D -> F
    h_i  = Block_i(h_{i-1}),  dilation 2 ** i              i = 0 .. L-1, self-attention
    out  = Conv1x1(h_{L-1})                                F -> C logits
    cond = [h_i for i in cond_blocks]                      concatenated: F * len(cond_blocks)

As in DiffAct's presets, the conditioning holds block outputs only: DiffAct can also append the
input features (index -1) or the encoder's softmax prediction (index -2), but none of its GTEA,
50Salads or Breakfast settings does, and the 2.26 M parameter count of the research code
matches ``cond_dim = F * len(cond_blocks)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..config import EncoderConfig
from ..kernels import frame_mask, window_key_mask
from .block import BlockGeometry, BlockWeights, ConvAttentionBlock, PointwiseConv, run_blocks


class EncoderOutput(NamedTuple):
    logits: torch.Tensor  # (B, C, T) encoder prediction (supervised by the loss)
    cond: torch.Tensor  # (B, F * len(cond_blocks), T) conditioning, 0 on padded frames


class Encoder(nn.Module):
    """ASFormer-style encoder (see the module docstring).

    Args:
        in_dim: feature dimension D of the stream.
        num_classes: C.
        cfg: blocks, width, kernel, dropouts and which block outputs form the conditioning.
        diffact_outside: DiffAct's attention at the sequence ends (``model.attention_outside``).

    Dropout (input channel / frame dropout and in-block dropout) draws from the global torch RNG
    in training mode and is inactive in eval mode.
    """

    def __init__(
        self, in_dim: int, num_classes: int, cfg: EncoderConfig, diffact_outside: bool = False
    ) -> None:
        super().__init__()
        bad = [b for b in cfg.cond_blocks if not 0 <= b < cfg.num_blocks]
        if bad or not cfg.cond_blocks:
            raise ValueError(
                f"encoder cond_blocks {list(cfg.cond_blocks)} must be non-empty block ids in "
                f"[0, {cfg.num_blocks - 1}]"
            )
        self.in_dim = in_dim
        self.cond_blocks = tuple(sorted(set(cfg.cond_blocks)))
        self.cond_dim = cfg.width * len(self.cond_blocks)
        self.channel_dropout = cfg.channel_dropout  # rate over whole feature channels
        self.frame_dropout = cfg.frame_dropout  # rate over whole frames
        self.dropout = cfg.dropout  # in every block
        self.proj_in = PointwiseConv(in_dim, cfg.width)
        self.blocks = nn.ModuleList(
            ConvAttentionBlock(
                cfg.width, cfg.kernel_size, 2**i, cfg.dropout, diffact_outside=diffact_outside
            )
            for i in range(cfg.num_blocks)
        )
        self.head = PointwiseConv(cfg.width, num_classes)

    def _project_input(self, x: torch.Tensor) -> torch.Tensor:
        """``proj_in(FrameDropout(ChannelDropout(x)))``: (B, D, T) -> (B, F, T).

        In training the two masks are rank-one (a factor per channel, one per frame), so they
        go on the (B, F, D) weight and the (B, F, T) output instead of the (B, D, T) features:
        ``W (x * c * f) + b = ((W * c) x) * f + b``. The masks are the draws ``nn.Dropout1d``
        would make (same shapes and order from the global RNG: channels, then frames), and for
        p = 0.5 (factors 0 and 2, exact in floating point) the result is the same to the bit.
        """
        batch, channels, frames = x.shape
        channel = self._noise(x, self.channel_dropout, (batch, channels, 1))  # (B, D, 1)
        frame = self._noise(x, self.frame_dropout, (batch, frames, 1))  # (B, T, 1)
        if channel is None and frame is None:
            return self.proj_in(x)
        weight = self.proj_in.matrix.expand(batch, -1, -1)  # (B, F, D)
        if channel is not None:
            weight = weight * channel.transpose(1, 2)  # (B, F, D), channels dropped
        h = torch.bmm(weight, x)  # (B, F, T)
        if frame is not None:
            h = h * frame.transpose(1, 2)  # frames dropped
        return h + self.proj_in.bias[:, None]

    def _noise(
        self, x: torch.Tensor, p: float, shape: tuple[int, int, int]
    ) -> torch.Tensor | None:
        """A dropout mask of ``shape`` (B, n, 1): 0 or ``1 / (1 - p)`` per entry, drawn from the
        global RNG; None when inactive (eval mode or p = 0)."""
        if not self.training or p == 0.0:
            return None
        if p == 1.0:
            return x.new_zeros(shape)
        return x.new_empty(shape).bernoulli_(1.0 - p).div_(1.0 - p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        """Args:
            x: (B, D, T) features (any values on padded frames).
            mask: (B, T) bool, True = real frame.

        Returns:
            :class:`EncoderOutput` with logits (B, C, T) and cond (B, F * n_cond, T).
        """
        if x.shape[1] != self.in_dim:
            raise ValueError(f"encoder expects {self.in_dim}-d features, got {x.shape[1]}-d")
        fmask = frame_mask(mask, x.dtype)
        h = self._project_input(x) * fmask.weight  # (B, F, T), 0 on padding
        key_masks = [window_key_mask(fmask.valid, b.kernel_size, b.dilation) for b in self.blocks]
        h, kept = run_blocks(
            self.block_weights(), h, fmask, key_masks, None, self.dropout, self.training,
            self.cond_blocks,
        )  # fmt: skip  # (B, F, T), the cond blocks' outputs
        return EncoderOutput(self.head(h), torch.cat(kept, dim=1))  # cond (B, F * n_cond, T)

    def block_weights(self) -> list[tuple[BlockWeights, BlockGeometry]]:
        """Per block its weights (views) and geometry, as :func:`run_blocks` takes them."""
        return [(block.weights(), block.geometry) for block in self.blocks]

