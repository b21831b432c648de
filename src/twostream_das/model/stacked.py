"""Several streams' networks as one batched pass, for inference, built per call from the
stream modules (nothing is kept between calls).

The streams of a two-stream model share one structure (one config) and have their own weights.
Stacking each block's weights over the G streams (:func:`stack_weights`) and the streams'
activations along the batch axis, ``(G * B, F, T)`` (stream-major), runs a layer of all
streams as one batched matmul and every elementwise op once, through the same
:func:`~twostream_das.kernels.block_forward` as one stream: half the operator calls of running
the streams one after the other, which is what dominates the small decoder (width 24) on a CPU.

What does not change during DDIM is computed once per call: the window key masks per
(kernel, dilation); per decoder block the qkv bias plus the conditioning's share of q and k
(once per video, shared by its K samples); the step embeddings of the call's DDIM steps, as a
table. The encoder head (logits) is not computed: inference only needs the conditioning.

Results equal the per-stream modules' to float tolerance (tests/model/test_stacked.py).
:class:`twostream_das.model.two_stream.TwoStreamModel` takes this path in eval mode with a fast
backend (:mod:`twostream_das.kernels.backends`); the reference backend runs the streams one
after the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..kernels import FrameMask, frame_mask, window_key_mask
from ..kernels.ops import linear
from .block import BlockWeights, block_forward
from .decoder import Decoder
from .encoder import Encoder


def _rows(tensors: Sequence[torch.Tensor], batch: int) -> torch.Tensor:
    """G tensors of shape S -> (G * B, *S): stream g's tensor repeated for its B videos."""
    stacked = torch.stack(list(tensors))  # (G, *S)
    if batch == 1:
        return stacked
    expanded = stacked.unsqueeze(1).expand(stacked.shape[0], batch, *stacked.shape[1:])
    return expanded.reshape(-1, *stacked.shape[1:])  # (G * B, *S)


def stack_weights(weights: Sequence[BlockWeights], batch: int) -> BlockWeights:
    """The same block of each stream (same width, kernel and dilation), stacked for G * B rows
    (stream-major)."""
    return BlockWeights(*(_rows(field, batch) for field in zip(*weights, strict=True)))


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
    """The streams' encoders as one (only the conditioning is computed).

    Args:
        encoders: one per stream, same structure (the input sizes may differ).
        batch: B videos per stream.
    """

    def __init__(self, encoders: Sequence[Encoder], batch: int) -> None:
        self.proj_in = [e.proj_in for e in encoders]
        self.blocks = [
            (stack_weights([e.blocks[i].weights() for e in encoders], batch), block.geometry)
            for i, block in enumerate(encoders[0].blocks)
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
        for index, (w, geometry) in enumerate(self.blocks):
            key_mask = key_masks(geometry.kernel_size, geometry.dilation)
            h = block_forward(w, geometry, h, fmask, key_mask, w.qkv_bias[..., None])
            if index in self.cond_blocks:
                kept.append(h)
        return torch.cat(kept, dim=1)  # (N, Dc, T)


class StackedDecoder:
    """The streams' decoders as one.

    Args:
        decoders: one per stream, same structure.
        batch: B rows per stream (K samples x V videos, sample-major).
        timesteps: the DDIM steps whose embeddings to tabulate.
    """

    def __init__(self, decoders: Sequence[Decoder], batch: int, timesteps: Sequence[int]) -> None:
        self.decoders, self.streams, self.batch = decoders, len(decoders), batch
        self.blocks = [
            (stack_weights([d.blocks[i].weights() for d in decoders], batch), block.geometry)
            for i, block in enumerate(decoders[0].blocks)
        ]
        self.proj_in_w = _rows([d.proj_in.matrix for d in decoders], batch)  # (N, F, C)
        self.head_w = _rows([d.head.matrix for d in decoders], batch)  # (N, C, F)
        self.head_b = _rows([d.head.bias for d in decoders], batch)  # (N, C)
        steps = torch.tensor(list(timesteps), dtype=torch.long, device=self.proj_in_w.device)
        table = torch.stack(
            [d.time_embedding(steps) + d.proj_in.bias for d in decoders], dim=1
        )  # (S, G, F): proj_in bias + step embedding
        rows = table.unsqueeze(2).expand(-1, -1, batch, -1).flatten(1, 2)  # (S, N, F)
        self.step_bias = {int(t): rows[i].to(self.proj_in_w.dtype) for i, t in enumerate(timesteps)}

    def prepare(self, cond: torch.Tensor) -> list[torch.Tensor]:
        """Per block (N, 3F, T): qkv bias + the conditioning's share of q and k
        (:meth:`~twostream_das.kernels.ConvAttentionBlock.project_cond` for all rows).

        ``cond``: (G * V, Dc, T) for V videos per stream, V dividing ``batch`` (B = K * V rows
        per stream: the K samples of a video share its conditioning, so its share is computed
        once per video and repeated, in the rows' order stream, sample, video).
        """
        videos = cond.shape[0] // self.streams
        repeats = self.batch // videos
        frames = cond.shape[2]
        shares = []
        for i in range(len(self.blocks)):
            blocks = [d.blocks[i] for d in self.decoders]
            width = blocks[0].width
            weight = _rows([b.cond_qk.matrix for b in blocks], videos)  # (G * V, 2F, Dc)
            bias = _rows([b.qkv.bias for b in blocks], videos)  # (G * V, 3F)
            qk = linear(cond, weight, bias[:, : 2 * width])  # (G * V, 2F, T)
            value = bias[:, 2 * width :, None].expand(-1, -1, frames)  # (G * V, F, T)
            share = torch.cat([qk, value], dim=1)  # (G * V, 3F, T)
            if repeats > 1:
                per_video = share.unflatten(0, (self.streams, 1, videos))  # (G, 1, V, 3F, T)
                share = per_video.expand(-1, repeats, -1, -1, -1).flatten(0, 2)  # (N, 3F, T)
            shares.append(share)
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
        h = linear(x, self.proj_in_w, self.step_bias[t])  # (N, F, T)
        if not fmask.full:
            h = h * fmask.weight
        for (w, geometry), share in zip(self.blocks, qkv_in, strict=True):
            key_mask = key_masks(geometry.kernel_size, geometry.dilation)
            h = block_forward(w, geometry, h, fmask, key_mask, share)
        return linear(h, self.head_w, self.head_b)  # (N, C, T)


def stacked_frame_mask(mask: torch.Tensor, streams: int, dtype: torch.dtype) -> FrameMask:
    """The (B, T) video mask repeated for G streams: (G * B, T)."""
    return frame_mask(mask.repeat(streams, 1), dtype)
