"""The stacked streams: how prediction runs several streams' networks as one batched pass.

The streams of a model share one structure (one config) and have their own weights. Stacking
each block's weights over the G streams (:func:`stack_weights`) and the streams' activations
along the batch axis, ``(G * B, F, T)`` (stream-major), runs a layer of all streams as one
batched matmul and every elementwise op once, through the same network function as one stream's
modules (:func:`~twostream_das.model.block.run_blocks` over
:func:`~twostream_das.model.block.block_forward`, and
:func:`~twostream_das.model.block.cond_share`): half the operator calls of running the streams
one after the other, which is what dominates the small decoder (width 24) on a CPU. Only the
1x1 projections into and out of the block stacks are written here, as batched matmuls over the
stacked matrices.

What does not change during DDIM is computed once per call: the window key masks per
(kernel, dilation); per decoder block the qkv bias plus the conditioning's share of q and k
(once per video, shared by its K samples); the step embeddings of the call's DDIM steps, as a
table. The encoder head (logits) is not computed: inference only needs the conditioning.
Nothing is kept between calls, so changed weights count.

Prediction chooses it (:func:`choose_strategy`): in eval mode, with a fast backend, for streams
of one structure; the model runs whatever strategy it is given
(:meth:`~twostream_das.model.multi_stream.MultiStreamModel.sample`). Results equal the
stream-by-stream run to float tolerance (tests/prediction/test_stacked.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from ..diffusion.sampling import Denoiser
from ..kernels import Backend, FrameMask, current_backend, frame_mask
from ..kernels.ops import linear
from ..model.block import BlockGeometry, BlockWeights, KeyMasks, cond_share, run_blocks
from ..model.decoder import Decoder
from ..model.encoder import Encoder
from ..model.multi_stream import MultiStreamModel, StreamStrategy
from ..model.stream import DiffusionStream


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


def stack_blocks(
    networks: Sequence[Sequence[tuple[BlockWeights, BlockGeometry]]], batch: int
) -> list[tuple[BlockWeights, BlockGeometry]]:
    """Per block of the G networks' ``block_weights()``: the weights stacked for G * B rows and
    the (shared) geometry."""
    return [
        (stack_weights([w for w, _ in blocks], batch), blocks[0][1])
        for blocks in zip(*networks, strict=True)
    ]


class StackedEncoder:
    """The streams' encoders as one (only the conditioning is computed).

    Args:
        encoders: one per stream, same structure (the input sizes may differ).
        batch: B videos per stream.
    """

    def __init__(self, encoders: Sequence[Encoder], batch: int) -> None:
        self.proj_in = [e.proj_in for e in encoders]
        self.blocks = stack_blocks([e.block_weights() for e in encoders], batch)
        self.cond_blocks = encoders[0].cond_blocks

    def conditioning(
        self, features: Sequence[torch.Tensor], fmask: FrameMask, key_masks: KeyMasks
    ) -> torch.Tensor:
        """Per stream (B, D_s, T) features -> (G * B, Dc, T) conditioning, streams stacked;
        fmask: mask of the G * B rows (the video mask repeated per stream)."""
        h = torch.cat([proj(x) for proj, x in zip(self.proj_in, features, strict=True)])
        if not fmask.full:
            h = h * fmask.weight  # (N, F, T)
        masks = [key_masks(g.kernel_size, g.dilation) for _, g in self.blocks]
        _, kept = run_blocks(self.blocks, h, fmask, masks, keep=self.cond_blocks)
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
        self.blocks = stack_blocks([d.block_weights() for d in decoders], batch)
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
        (:func:`~twostream_das.model.block.cond_share` for all rows).

        ``cond``: (G * V, Dc, T) for V videos per stream, V dividing ``batch`` (B = K * V rows
        per stream: the K samples of a video share its conditioning, so its share is computed
        once per video and repeated, in the rows' order stream, sample, video).
        """
        videos = cond.shape[0] // self.streams
        repeats = self.batch // videos
        shares = []
        for i in range(len(self.blocks)):
            blocks = [d.blocks[i] for d in self.decoders]
            weight = _rows([b.cond_qk.matrix for b in blocks], videos)  # (G * V, 2F, Dc)
            bias = _rows([b.qkv.bias for b in blocks], videos)  # (G * V, 3F)
            share = cond_share(cond, weight, bias, blocks[0].width)  # (G * V, 3F, T)
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
        key_masks: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """(N, C, T) network input at DDIM step t -> (N, C, T) x0 logits; ``key_masks``: per
        block (N, k, T)."""
        h = linear(x, self.proj_in_w, self.step_bias[t])  # (N, F, T)
        if not fmask.full:
            h = h * fmask.weight
        h, _ = run_blocks(self.blocks, h, fmask, key_masks, qkv_in)
        return linear(h, self.head_w, self.head_b)  # (N, C, T)


def stacked_frame_mask(mask: torch.Tensor, streams: int, dtype: torch.dtype) -> FrameMask:
    """The (B, T) video mask repeated for G streams: (G * B, T)."""
    return frame_mask(mask.repeat(streams, 1), dtype)


class StackedStreams:
    """The G streams as one stacked network (a
    :data:`~twostream_das.model.multi_stream.StreamStrategy`): the encoders run once here on
    G * B rows; :meth:`for_samples` gives the denoiser of G * k * B rows (stream-major, then
    sample, then video).

    Args:
        streams: G streams of one structure.
        features: per stream (B, D_s, T), in the streams' order.
        mask: (B, T) bool.
        timesteps: the sampler's steps (their embeddings are tabulated once).
    """

    def __init__(
        self,
        streams: Sequence[DiffusionStream],
        features: Sequence[torch.Tensor],
        mask: torch.Tensor,
        timesteps: Sequence[int],
    ) -> None:
        self.streams, self.mask, self.timesteps = streams, mask, tuple(timesteps)
        self.dtype = features[0].dtype
        self.batch_size = mask.shape[0]
        encoder = StackedEncoder([s.encoder for s in streams], self.batch_size)
        self.enc_mask = stacked_frame_mask(mask, len(streams), self.dtype)  # (G * B, T)
        self.cond = encoder.conditioning(
            features, self.enc_mask, KeyMasks(self.enc_mask.valid)
        )  # (G * B, Dc, T), once for all the samples
        self._passes: dict[int, Denoiser] = {}

    def for_samples(self, k: int) -> Denoiser:
        """x_in (G * k * B, C, T), t -> x0 logits (at most two sizes: the pass and the rest)."""
        if k not in self._passes:
            count = len(self.streams)
            decoder = StackedDecoder(
                [s.decoder for s in self.streams], k * self.batch_size, self.timesteps
            )
            fmask = (
                self.enc_mask if k == 1 else stacked_frame_mask(self.mask, count * k, self.dtype)
            )
            qkv_in = decoder.prepare(self.cond)  # per block (G * k * B, 3F, T)
            key_masks = KeyMasks(fmask.valid)
            masks = [key_masks(g.kernel_size, g.dilation) for _, g in decoder.blocks]
            self._passes[k] = lambda x_in, t: decoder.denoise(x_in, t, qkv_in, fmask, masks)
        return self._passes[k]


def choose_strategy(model: MultiStreamModel) -> Optional[StreamStrategy]:
    """How prediction runs ``model``'s streams: :class:`StackedStreams` in eval mode with a fast
    backend (:func:`~twostream_das.kernels.current_backend`) for streams of one structure (the
    reference backend is the spec and runs them one after the other); None otherwise (the
    streams one after the other)."""
    if model.training or current_backend() is Backend.REFERENCE or not model.stackable():
        return None
    return StackedStreams
