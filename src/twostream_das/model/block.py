"""The conv-attention block shared by the encoder (self-attention) and the decoder
(cross-attention), after ASFormer as simplified by DiffAct:

    h   = dropout(x)
    out = FFN(InstanceNorm(DilatedConv(h) + WindowedAttention(h [, cond])))
    x   = x + out                        (then zeroed on padded frames)

Self-attention (``cond_dim == 0``): q, k, v are 1x1 projections of the state.
Cross-attention (``cond_dim > 0``): q and k are 1x1 projections of ``[state ; cond]``, v of
the state. The projection of the concatenation is split into a state part (``qkv``, with the
biases) and a cond part (``cond_qk``, no bias): ``W [x ; c] + b = W_x x + (W_c c + b)``.
:meth:`ConvAttentionBlock.project_cond` computes ``qkv_in = W_c c + b`` (0 in the value rows
but the bias), so a caller whose conditioning is fixed (the DDIM loop) computes it once per
video instead of once per step.

The math is :func:`block_forward`, a function of the block's weights (:class:`BlockWeights`):
a module holds one stream's weights; the stacked streams of prediction
(:mod:`twostream_das.prediction.stacked`) pass the same blocks of several streams stacked along
the rows. :func:`run_blocks` runs a stack of blocks, the encoder's and the decoder's network,
for both. Each op is one call of :mod:`.ops`, whose backend
(reference PyTorch, shifted, native) is chosen by :mod:`.backends`.

Padding: the state is kept at exactly 0 on padded frames, so the zero-padded convolution of a
real frame sees the same values as for the video alone; the attention masks padded keys; the
instance norm takes its statistics over real frames only. Together these make a video's output
independent of the videos it is batched with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Optional

import torch
from torch import nn

from ..kernels import ops
from ..kernels.windows import FrameMask, window_key_mask


class BlockWeights(NamedTuple):
    """A block's weights as matrices: one stream's, or N rows' stacked along a leading axis
    (``...`` = nothing, or N).

    Attributes:
        conv_weight: (..., F, F * k), ``(c_in, tap)`` column order; conv_bias (..., F).
        qkv_weight: (..., 3F, F), the state's share of q, k, v; qkv_bias (..., 3F).
        ffn_in_weight, ffn_out_weight: (..., F, F); ffn_in_bias, ffn_out_bias (..., F).
    """

    conv_weight: torch.Tensor
    conv_bias: torch.Tensor
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    ffn_in_weight: torch.Tensor
    ffn_in_bias: torch.Tensor
    ffn_out_weight: torch.Tensor
    ffn_out_bias: torch.Tensor


class BlockGeometry(NamedTuple):
    kernel_size: int  # k, odd: the conv's taps and the attention window
    dilation: int  # d
    diffact_outside: bool  # DiffAct's attention at the sequence ends (every backend has it)


def block_forward(
    w: BlockWeights,
    geometry: BlockGeometry,
    x: torch.Tensor,
    fmask: FrameMask,
    key_mask: torch.Tensor,
    qkv_in: torch.Tensor,
    dropout: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """One block (see the module docstring).

    Args:
        w: the weights (one stream's, or per row).
        x: (B, F, T) state, 0 on padded frames.
        fmask: the batch's :class:`FrameMask`.
        key_mask: (B, k, T) bool from ``window_key_mask(fmask.valid, k, dilation)``.
        qkv_in: (..., 3F, 1) the qkv bias, or (B, 3F, T) from
            :meth:`ConvAttentionBlock.project_cond` (cross-attention).
        dropout, training: the dropout rate on the block input, applied in training only.

    Returns:
        (B, F, T) new state, 0 on padded frames.
    """
    kernel_size, dilation, diffact_outside = geometry
    h = ops.dropout(x, dropout, training)  # (B, F, T)
    mixed = ops.conv_attention(
        h, w.conv_weight, w.conv_bias, w.qkv_weight, qkv_in, key_mask,
        (kernel_size, dilation), diffact_outside,
    )  # fmt: skip  # (B, F, T): DilatedConv(h) + WindowedAttention(q, k, v)
    h = ops.instance_norm(mixed, fmask)  # (B, F, T)
    h = ops.linear(h, w.ffn_in_weight, w.ffn_in_bias).relu_()  # (B, F, T)
    x = ops.linear(h, w.ffn_out_weight, w.ffn_out_bias).add_(x)  # x + FFN(...)
    return x if fmask.full else x.mul_(fmask.weight.to(x.dtype))


class PointwiseConv(nn.Conv1d):
    """A 1x1 ``nn.Conv1d`` (same parameters, init and state-dict keys) computed as one batched
    matmul, several times faster than the convolution kernel on CPU at these widths."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    @property
    def matrix(self) -> torch.Tensor:
        """(C_out, C_in) view of the weight."""
        return self.weight[:, :, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) -> (B, C_out, T)."""
        return ops.linear(x, self.matrix, self.bias)


class DilatedConv(nn.Conv1d):
    """The block's zero-padded ``nn.Conv1d`` of odd kernel k and dilation d (parameters, init
    and state-dict keys of ``nn.Conv1d``); the block computes it inside
    :func:`.ops.conv_attention`."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        reach = (kernel_size // 2) * dilation
        super().__init__(channels, channels, kernel_size, padding=reach, dilation=dilation)

    @property
    def matrix(self) -> torch.Tensor:
        """(C_out, C_in * k) view of the weight, ``(c_in, tap)`` column order."""
        return self.weight.reshape(self.out_channels, -1)


class ConvAttentionBlock(nn.Module):
    """One encoder or decoder block (see the module docstring).

    Args:
        width: channels F of the state.
        kernel_size: odd k of the dilated conv and of the attention window.
        dilation: d (2 ** block index).
        dropout: dropout rate on the block input (and on cond for cross-attention), in
            training mode only; the masks draw from the global torch RNG.
        cond_dim: channels of the conditioning features; 0 = self-attention.
        diffact_outside: DiffAct's handling of window positions outside the sequence
            (:func:`.reference.windowed_attention`) instead of excluding them (every
            backend implements it).
    """

    def __init__(
        self,
        width: int,
        kernel_size: int,
        dilation: int,
        dropout: float,
        cond_dim: int = 0,
        diffact_outside: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.width = width
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.diffact_outside = diffact_outside
        self.dropout = dropout
        self.conv = DilatedConv(width, kernel_size, dilation)
        self.qkv = PointwiseConv(width, 3 * width)  # state -> q, k, v (holds the biases)
        self.cond_qk = PointwiseConv(cond_dim, 2 * width, bias=False) if cond_dim > 0 else None
        self.ffn = nn.Sequential(
            PointwiseConv(width, width), nn.ReLU(), PointwiseConv(width, width)
        )

    @property
    def is_cross(self) -> bool:
        return self.cond_qk is not None

    @property
    def geometry(self) -> BlockGeometry:
        return BlockGeometry(self.kernel_size, self.dilation, self.diffact_outside)

    def weights(self) -> BlockWeights:
        """This block's weights as matrices (views, no copy)."""
        ffn_in, ffn_out = self.ffn[0], self.ffn[2]
        return BlockWeights(
            self.conv.matrix, self.conv.bias, self.qkv.matrix, self.qkv.bias,
            ffn_in.matrix, ffn_in.bias, ffn_out.matrix, ffn_out.bias,
        )  # fmt: skip

    def project_cond(self, cond: torch.Tensor) -> torch.Tensor:
        """The qkv projection's input term for cross-attention: :func:`cond_share` of this
        block's weights, after this block's dropout on ``cond`` (B, Dc, T) -> (B, 3F, T)."""
        if self.cond_qk is None:
            raise RuntimeError("project_cond called on a self-attention block")
        cond = ops.dropout(cond, self.dropout, self.training)
        return cond_share(cond, self.cond_qk.matrix, self.qkv.bias, self.width)

    def forward(
        self,
        x: torch.Tensor,
        fmask: FrameMask,
        key_mask: torch.Tensor,
        qkv_in: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Args:
            x: (B, F, T) state, 0 on padded frames.
            fmask: the batch's :class:`FrameMask`.
            key_mask: (B, k, T) bool from ``window_key_mask(fmask.valid, k, dilation)``.
            qkv_in: (B, 3F, T) from :meth:`project_cond`; required iff cross-attention.

        Returns:
            (B, F, T) new state, 0 on padded frames.
        """
        assert (qkv_in is not None) == self.is_cross, "qkv_in must be given iff cross-attention"
        if qkv_in is None:
            qkv_in = self.qkv.bias[:, None]  # (3F, 1)
        return block_forward(
            self.weights(), self.geometry, x, fmask, key_mask, qkv_in, self.dropout, self.training
        )


def cond_share(
    cond: torch.Tensor, cond_qk_weight: torch.Tensor, qkv_bias: torch.Tensor, width: int
) -> torch.Tensor:
    """A cross-attention block's qkv input term ``[W_q,c cond ; W_k,c cond ; 0] + b_qkv``.

    Args:
        cond: (B, Dc, T) conditioning features (0 on padded frames).
        cond_qk_weight: (2F, Dc) the conditioning's share of q and k, or (B, 2F, Dc) per row.
        qkv_bias: (3F,) or (B, 3F) per row.
        width: F.

    Returns:
        (B, 3F, T), the ``qkv_in`` of :func:`block_forward`.
    """
    qk = ops.linear(cond, cond_qk_weight, qkv_bias[..., : 2 * width])  # (B, 2F, T)
    value = qkv_bias[..., 2 * width :, None].expand(cond.shape[0], width, cond.shape[2])
    return torch.cat([qk, value.to(qk.dtype)], dim=1)  # (B, 3F, T)


class KeyMasks:
    """The window key masks (:func:`~twostream_das.kernels.window_key_mask`, (B, k, T) bool) of
    one batch per (kernel, dilation), each built on first use (blocks of the encoder and the
    decoder share them); made per call, never kept."""

    def __init__(self, valid: torch.Tensor) -> None:
        self.valid = valid  # (B, T) bool, True = real frame
        self._cache: dict[tuple[int, int], torch.Tensor] = {}

    def __call__(self, kernel_size: int, dilation: int) -> torch.Tensor:
        key = (kernel_size, dilation)
        if key not in self._cache:
            self._cache[key] = window_key_mask(self.valid, kernel_size, dilation)
        return self._cache[key]


def run_blocks(
    blocks: Sequence[tuple[BlockWeights, BlockGeometry]],
    h: torch.Tensor,
    fmask: FrameMask,
    key_masks: Sequence[torch.Tensor],
    qkv_in: Optional[Sequence[torch.Tensor]] = None,
    dropout: float = 0.0,
    training: bool = False,
    keep: Sequence[int] = (),
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A stack of blocks (:func:`block_forward` each), the network of the encoder (self-attention)
    and of the decoder (cross-attention), over one stream's weights or per-row weights.

    Args:
        blocks: per block its weights and geometry.
        h: (B, F, T) input state, 0 on padded frames.
        fmask: the batch's :class:`FrameMask`.
        key_masks: per block (B, k, T) bool, ``window_key_mask(fmask.valid, k, dilation)``.
        qkv_in: per block (B, 3F, T) from :func:`cond_share` (cross-attention); None: each
            block's qkv bias (self-attention).
        keep: indices of the blocks whose outputs to return as well (the conditioning).

    Returns:
        (B, F, T) the last block's output, and the outputs of the ``keep`` blocks in order.
    """
    kept = []
    for index, ((w, geometry), key_mask) in enumerate(zip(blocks, key_masks, strict=True)):
        extra = w.qkv_bias[..., None] if qkv_in is None else qkv_in[index]  # (..., 3F, 1)
        h = block_forward(w, geometry, h, fmask, key_mask, extra, dropout, training)
        if index in keep:
            kept.append(h)
    return h, kept
