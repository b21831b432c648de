"""Both streams' networks as one batched pass, for inference.

The RGB and FLOW streams share one structure (one config) and have their own weights. Stacking
each layer's weights over the G streams, ``(G, O, I)``, and the streams' activations along the
batch axis, ``(G * B, F, T)`` (stream-major), runs a layer of both streams as one batched matmul
and every elementwise op once: half the operator calls of running the streams one after the
other, which is what dominates the small decoder (width 24) on a CPU.

The math is :meth:`twostream_das.modules.ConvAttentionBlock.forward` in eval mode (dropout is
the identity and is skipped), with what does not change during DDIM folded in once per call:

- the attention scale ``F ** -0.5`` into the query rows of the projections;
- the padding / sequence-edge key masks, one per (kernel, dilation);
- per decoder block, the qkv bias plus the conditioning's share of q and k into one
  ``(G * B, 3F, T)`` tensor, the input of the block's qkv matmul (``W [x ; c] + b``);
- the step embedding (an MLP) for every DDIM timestep, as a table;
- the encoder head (logits) is not computed: inference only needs the conditioning.

Results equal the per-stream modules' to float tolerance (tests/test_stacked.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from .decoder import Decoder
from .encoder import Encoder
from .modules import ConvAttentionBlock, FrameMask, frame_mask, masked_instance_norm
from .modules.attention import attend, window_key_mask, window_views


def _stack(tensors: Sequence[torch.Tensor], batch: int) -> torch.Tensor:
    """G tensors of shape S -> (G * B, *S): stream g's tensor repeated for its B videos."""
    w = torch.stack(list(tensors))  # (G, *S)
    expanded = w.unsqueeze(1).expand(w.shape[0], batch, *w.shape[1:])  # (G, B, *S)
    return expanded.reshape(-1, *w.shape[1:])  # (G * B, *S)


def _pointwise(convs: Sequence[torch.nn.Conv1d], batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked 1x1 conv weights (G * B, O, I) and biases (G * B, O, 1)."""
    weight = _stack([c.weight[:, :, 0] for c in convs], batch)
    bias = _stack([c.bias[:, None] for c in convs], batch)
    return weight, bias


class StackedBlock(NamedTuple):
    """One block's weights for all streams (N = G * B). Query rows carry the attention scale."""

    conv_w: torch.Tensor  # (N, F, F * k), (c, j) column order as DilatedConv
    conv_b: torch.Tensor  # (N, F, 1)
    qkv_w: torch.Tensor  # (N, 3F, F)
    qkv_b: torch.Tensor  # (N, 3F, 1)
    ffn_in_w: torch.Tensor  # (N, F, F)
    ffn_in_b: torch.Tensor  # (N, F, 1)
    ffn_out_w: torch.Tensor  # (N, F, F)
    ffn_out_b: torch.Tensor  # (N, F, 1)
    cond_w: torch.Tensor | None  # (N, 3F, Dc) with zero value rows; None for self-attention
    kernel_size: int
    dilation: int
    width: int


def stack_blocks(blocks: Sequence[ConvAttentionBlock], batch: int) -> StackedBlock:
    """Stack the same block of each stream (same width, kernel and dilation)."""
    first = blocks[0]
    width, k = first.width, first.kernel_size
    scale = torch.ones(3 * width, 1)
    scale[:width] = width**-0.5  # queries
    conv_w = _stack([b.conv.weight.reshape(width, width * k) for b in blocks], batch)
    conv_b = _stack([b.conv.bias[:, None] for b in blocks], batch)
    qkv_w = _stack([b.qkv.weight[:, :, 0] * scale for b in blocks], batch)
    qkv_b = _stack([b.qkv.bias[:, None] * scale for b in blocks], batch)
    ffn_in_w, ffn_in_b = _pointwise([b.ffn[0] for b in blocks], batch)
    ffn_out_w, ffn_out_b = _pointwise([b.ffn[2] for b in blocks], batch)
    cond_w = None
    if first.cond_qk is not None:
        cond_w = _stack(
            [
                torch.cat(
                    [
                        b.cond_qk.weight[:, :, 0],
                        b.cond_qk.weight.new_zeros(width, b.cond_qk.in_channels),
                    ]
                )
                * scale
                for b in blocks
            ],
            batch,
        )  # (N, 3F, Dc)
    return StackedBlock(
        conv_w, conv_b, qkv_w, qkv_b, ffn_in_w, ffn_in_b, ffn_out_w, ffn_out_b, cond_w,
        k, first.dilation, width,
    )  # fmt: skip


def block_forward(
    p: StackedBlock, x: torch.Tensor, fmask: FrameMask, key_mask: torch.Tensor, qkv_in: torch.Tensor
) -> torch.Tensor:
    """:meth:`ConvAttentionBlock.forward` (eval) on stacked streams.

    Args:
        x: (N, F, T) state, 0 on padded frames.
        fmask: the mask of the N rows.
        key_mask: (N, k, T) bool from :func:`window_key_mask`.
        qkv_in: (N, 3F, 1) qkv bias, or (N, 3F, T) bias + conditioning share.
    """
    n, width, frames = x.shape
    k, d = p.kernel_size, p.dilation
    columns = window_views(x, k, d).reshape(n, width * k, frames)  # (N, F*k, T) copy
    local = torch.baddbmm(p.conv_b, p.conv_w, columns)  # (N, F, T)
    qkv = torch.baddbmm(qkv_in, p.qkv_w, x)  # (N, 3F, T): [scaled q ; k ; v]
    q, keys, values = qkv.split(width, dim=1)  # (N, F, T) each
    # the window as k shifted multiply-adds (no (N, F, k, T) product), added onto the conv;
    # the attention scale is already in q
    attend(q, keys, values, key_mask, (k, d, 1.0), out=local)
    h = masked_instance_norm(local, fmask)  # (N, F, T)
    out = torch.baddbmm(p.ffn_in_b, p.ffn_in_w, h).relu_()  # (N, F, T)
    x = torch.baddbmm(p.ffn_out_b, p.ffn_out_w, out).add_(x)  # x + FFN(...)
    return x if fmask.full else x.mul_(fmask.weight)


class KeyMasks:
    """The window key masks (:func:`window_key_mask`) per (kernel, dilation), built once per
    call."""

    def __init__(self, valid: torch.Tensor) -> None:
        self.valid = valid
        self._cache: dict[tuple[int, int], torch.Tensor] = {}

    def __call__(self, kernel_size: int, dilation: int) -> torch.Tensor:
        key = (kernel_size, dilation)
        if key not in self._cache:
            self._cache[key] = window_key_mask(self.valid, kernel_size, dilation)
        return self._cache[key]


class StackedEncoder:
    """The streams' encoders as one: their blocks' weights stacked once (see the module
    docstring); only the conditioning is computed.

    Args:
        encoders: one per stream, same structure (the input sizes may differ).
        batch: B videos per stream.
    """

    def __init__(self, encoders: Sequence[Encoder], batch: int) -> None:
        self.proj_in = [e.proj_in for e in encoders]
        self.blocks = [
            stack_blocks([e.blocks[i] for e in encoders], batch)
            for i in range(len(encoders[0].blocks))
        ]
        self.cond_blocks = encoders[0].cond_blocks

    def conditioning(
        self, features: Sequence[torch.Tensor], fmask: FrameMask, key_masks: KeyMasks
    ) -> torch.Tensor:
        """Per stream (B, D_s, T) features -> (G * B, Dc, T) conditioning, streams stacked;
        fmask: mask of the G * B rows (the video mask repeated per stream)."""
        h = torch.cat([proj(x) for proj, x in zip(self.proj_in, features, strict=True)])
        if not fmask.full:
            h = h * fmask.weight  # (N, F, T)
        kept = []
        for index, p in enumerate(self.blocks):
            h = block_forward(p, h, fmask, key_masks(p.kernel_size, p.dilation), p.qkv_b)
            if index in self.cond_blocks:
                kept.append(h)
        return torch.cat(kept, dim=1)  # (N, Dc, T)


class StackedDecoder:
    """The streams' decoders as one, weights stacked once (see the module docstring).

    Args:
        decoders: one per stream, same structure.
        batch: B videos per stream.
        timesteps: the DDIM steps whose embeddings to tabulate.
    """

    def __init__(self, decoders: Sequence[Decoder], batch: int, timesteps: Sequence[int]) -> None:
        self.streams, self.batch = len(decoders), batch
        self.blocks = [
            stack_blocks([d.blocks[i] for d in decoders], batch)
            for i in range(len(decoders[0].blocks))
        ]
        self.proj_in_w, self.proj_in_b = _pointwise([d.proj_in for d in decoders], batch)
        self.head_w, self.head_b = _pointwise([d.head for d in decoders], batch)
        device = self.proj_in_w.device
        steps = torch.tensor(list(timesteps), dtype=torch.long, device=device)  # (S,)
        table = torch.stack([d.time_embedding(steps) for d in decoders], dim=1)  # (S, G, F)
        rows = table.unsqueeze(2).expand(-1, -1, batch, -1).flatten(1, 2)  # (S, N, F)
        self.step_bias = {
            int(t): self.proj_in_b + rows[i][:, :, None].to(self.proj_in_b.dtype)
            for i, t in enumerate(timesteps)
        }  # t -> (N, F, 1): proj_in bias + step embedding

    def prepare(self, cond: torch.Tensor) -> list[torch.Tensor]:
        """Per block (N, 3F, T): qkv bias + the conditioning's share of q and k.

        ``cond``: (G * V, Dc, T) for V videos per stream, V dividing ``batch`` (B = K * V rows
        per stream: the K samples of a video share its conditioning, so its share is computed
        once per video and repeated, in the rows' order stream, sample, video).
        """
        videos = cond.shape[0] // self.streams
        repeats = self.batch // videos
        shares = []
        for p in self.blocks:
            if repeats == 1:
                shares.append(torch.baddbmm(p.qkv_b, p.cond_w, cond))
                continue
            weight = p.cond_w.unflatten(0, (self.streams, self.batch))[:, :videos].flatten(0, 1)
            bias = p.qkv_b.unflatten(0, (self.streams, self.batch))[:, :videos].flatten(0, 1)
            share = torch.baddbmm(bias, weight, cond)  # (G * V, 3F, T)
            per_video = share.unflatten(0, (self.streams, 1, videos))  # (G, 1, V, 3F, T)
            shares.append(per_video.expand(-1, repeats, -1, -1, -1).flatten(0, 2))  # (N, 3F, T)
        return shares

    def denoise(
        self,
        x: torch.Tensor,
        t: int,
        qkv_in: Sequence[torch.Tensor],
        fmask: FrameMask,
        key_masks: KeyMasks,
    ) -> torch.Tensor:
        """(N, C, T) network input at DDIM step t -> (N, C, T) x0 logits."""
        h = torch.baddbmm(self.step_bias[t], self.proj_in_w, x)  # (N, F, T)
        if not fmask.full:
            h = h * fmask.weight
        for p, share in zip(self.blocks, qkv_in, strict=True):
            h = block_forward(p, h, fmask, key_masks(p.kernel_size, p.dilation), share)
        return torch.baddbmm(self.head_b, self.head_w, h)  # (N, C, T)


def stacked_frame_mask(mask: torch.Tensor, streams: int, dtype: torch.dtype) -> FrameMask:
    """The (B, T) video mask repeated for G streams: (G * B, T)."""
    return frame_mask(mask.repeat(streams, 1), dtype)
