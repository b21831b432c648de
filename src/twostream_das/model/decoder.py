"""Decoder: (noisy labels, diffusion step, conditioning) -> logits of the clean labels x0.

    h   = Conv1x1(x) + TimeMLP(sinusoid(t))               C -> F, step as per-channel bias
    h_i = Block_i(h_{i-1}, cond), dilation 2 ** i          cross-attention: q, k from [h ; cond]
    out = Conv1x1(h_{L-1})                                 F -> C logits of x0

The decoder knows nothing of the noise schedule: ``x`` is whatever
:meth:`twostream_das.diffusion.GaussianDiffusion.model_input` makes of x_t, and ``t`` is only
embedded. The conditioning's share of every block's query/key projection depends on the video
alone, so :meth:`Decoder.prepare` computes it (with the padding masks) once and
:meth:`Decoder.denoise` reuses it at every DDIM step; :meth:`Decoder.forward` does both.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..config import DecoderConfig
from ..kernels import FrameMask, frame_mask, window_key_mask
from .block import BlockGeometry, BlockWeights, ConvAttentionBlock, PointwiseConv, run_blocks
from .embeddings import TimestepEmbedding


class DecoderContext(NamedTuple):
    """Everything of a decoder pass that depends on the video but not on (x_t, t).

    Attributes:
        fmask: the batch's padding mask.
        key_masks: per block, (B, k, T) bool attention key masks.
        qkv_in: per block, (B, 3F, T) the qkv bias plus the conditioning's share of the
            query/key projections (:meth:`ConvAttentionBlock.project_cond`).
    """

    fmask: FrameMask
    key_masks: tuple[torch.Tensor, ...]
    qkv_in: tuple[torch.Tensor, ...]


class Decoder(nn.Module):
    """Denoising decoder (see the module docstring).

    Args:
        num_classes: C.
        cond_dim: channels Dc of the conditioning features (the encoder's ``cond_dim``).
        cfg: blocks, width, kernel, step-embedding size, dropout. Dropout draws from the global
            torch RNG in training mode and is inactive in eval mode.
        diffact_outside: DiffAct's attention at the sequence ends (``model.attention_outside``).
    """

    def __init__(
        self, num_classes: int, cond_dim: int, cfg: DecoderConfig, diffact_outside: bool = False
    ) -> None:
        super().__init__()
        if cond_dim < 1:
            raise ValueError(f"decoder cond_dim must be >= 1, got {cond_dim}")
        self.num_classes = num_classes
        self.cond_dim = cond_dim
        self.dropout = cfg.dropout  # in every block
        self.proj_in = PointwiseConv(num_classes, cfg.width)
        self.time_embedding = TimestepEmbedding(cfg.time_emb_dim, cfg.width)
        self.blocks = nn.ModuleList(
            ConvAttentionBlock(
                cfg.width, cfg.kernel_size, 2**i, cfg.dropout, cond_dim, diffact_outside
            )
            for i in range(cfg.num_blocks)
        )
        self.head = PointwiseConv(cfg.width, num_classes)

    def prepare(self, cond: torch.Tensor, mask: torch.Tensor) -> DecoderContext:
        """Precompute the per-video part of a pass.

        Args:
            cond: (B, Dc, T) conditioning features (already multiplied by a condition mask).
            mask: (B, T) bool, True = real frame.
        """
        if cond.shape[1] != self.cond_dim:
            raise ValueError(f"decoder expects {self.cond_dim}-d conditioning, got {cond.shape[1]}")
        fmask = frame_mask(mask, cond.dtype)
        key_masks = tuple(
            window_key_mask(fmask.valid, b.kernel_size, b.dilation) for b in self.blocks
        )  # each (B, k, T)
        qkv_in = tuple(block.project_cond(cond) for block in self.blocks)  # each (B, 3F, T)
        return DecoderContext(fmask, key_masks, qkv_in)

    def denoise(self, x: torch.Tensor, t: torch.Tensor, ctx: DecoderContext) -> torch.Tensor:
        """Args:
            x: (B, C, T) noisy labels as the network sees them.
            t: (B,) diffusion steps.
            ctx: from :meth:`prepare` for the same videos.

        Returns:
            (B, C, T) logits of x0.
        """
        bias = self.time_embedding(t)  # (B, F)
        h = self.proj_in(x)  # (B, F, T)
        h = h + bias[:, :, None].to(h.dtype)
        if not ctx.fmask.full:
            h = h * ctx.fmask.weight.to(h.dtype)
        h, _ = run_blocks(self.block_weights(), h, ctx.fmask, ctx.key_masks, ctx.qkv_in,
                          self.dropout, self.training)  # fmt: skip  # (B, F, T)
        return self.head(h)

    def block_weights(self) -> list[tuple[BlockWeights, BlockGeometry]]:
        """Per block its weights (views) and geometry, as :func:`run_blocks` takes them."""
        return [(block.weights(), block.geometry) for block in self.blocks]

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Args: x (B, C, T), t (B,), cond (B, Dc, T), mask (B, T) bool.
        Returns: (B, C, T) logits of x0."""
        return self.denoise(x, t, self.prepare(cond, mask))
