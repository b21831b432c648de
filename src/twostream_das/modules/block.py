"""The conv-attention block shared by the encoder (self-attention) and the decoder
(cross-attention), after ASFormer as simplified by DiffAct:

    h   = dropout(x)
    out = FFN(InstanceNorm(DilatedConv(h) + WindowedAttention(h [, cond])))
    x   = x + out                        (then zeroed on padded frames)

Self-attention (``cond_dim == 0``): q, k, v are 1x1 projections of the state.
Cross-attention (``cond_dim > 0``): q and k are 1x1 projections of ``[state ; cond]``, v of
the state. The projection of the concatenation is split into a state part (``qkv``, with the
biases) and a cond part (``cond_qk``, no bias): ``W [x ; c] = W_x x + W_c c``. The cond part is
computed by :meth:`ConvAttentionBlock.project_cond`, so a caller whose conditioning is fixed
(the DDIM loop) computes it once per video instead of once per step.

Padding: the state is kept at exactly 0 on padded frames, so the zero-padded convolution of a
real frame sees the same values as for the video alone; the attention masks padded keys; the
instance norm takes its statistics over real frames only. Together these make a video's output
independent of the videos it is batched with.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .attention import FrameMask, window_views, windowed_attention

NORM_EPS = 1e-5
"""Variance epsilon of the instance norm (``nn.InstanceNorm1d``'s default, as in ASFormer)."""


def masked_instance_norm(x: torch.Tensor, fmask: FrameMask) -> torch.Tensor:
    """Instance norm over time using real frames only (no affine, biased variance).

    Equals ``nn.InstanceNorm1d(C)`` on a video without padding. Statistics are taken in float32.

    Args:
        x: (B, C, T).
        fmask: the batch's :class:`FrameMask`.

    Returns:
        (B, C, T) in x's dtype, 0 on padded frames.
    """
    xf = x.float()
    if fmask.full:  # no padding: plain statistics (cheaper than F.instance_norm on CPU)
        centred = xf - xf.mean(dim=2, keepdim=True)  # (B, C, T)
        var = centred.square().mean(dim=2, keepdim=True)  # (B, C, 1)
        return (centred * torch.rsqrt(var + NORM_EPS)).to(x.dtype)
    mean = (xf * fmask.weight).sum(dim=2, keepdim=True) / fmask.count  # (B, C, 1)
    centred = (xf - mean) * fmask.weight  # (B, C, T), 0 on padding
    var = centred.square().sum(dim=2, keepdim=True) / fmask.count  # (B, C, 1)
    return (centred * torch.rsqrt(var + NORM_EPS)).to(x.dtype)


def _batched_matmul(
    weight: torch.Tensor, x: torch.Tensor, bias: Optional[torch.Tensor]
) -> torch.Tensor:
    """(B, O, I) @ (B, I, T) (+ bias (O,)) -> (B, O, T) in one BLAS call."""
    if bias is None:
        return torch.bmm(weight, x)
    return torch.baddbmm(bias[None, :, None], weight, x)


class PointwiseConv(nn.Conv1d):
    """A 1x1 ``nn.Conv1d`` (same parameters, init and state-dict keys) computed as one batched
    matmul, several times faster than the convolution kernel on CPU at these widths."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) -> (B, C_out, T)."""
        weight = self.weight[:, :, 0].expand(x.shape[0], -1, -1)  # (B, C_out, C_in), no copy
        return _batched_matmul(weight, x, self.bias)


class DilatedConv(nn.Conv1d):
    """A zero-padded ``nn.Conv1d`` of odd kernel k and dilation d (same parameters, init and
    state-dict keys) computed as one matmul over :func:`window_views`, the attention's own
    window: ``out = W[C_out, C_in * k] @ windows[C_in * k, T]``. On CPU this beats the
    convolution kernel at decoder widths and matches it at encoder widths."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        reach = (kernel_size // 2) * dilation
        super().__init__(channels, channels, kernel_size, padding=reach, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)."""
        batch, channels, frames = x.shape
        k, d = self.kernel_size[0], self.dilation[0]
        columns = window_views(x, k, d).reshape(batch, channels * k, frames)  # (B, C*k, T) copy
        weight = self.weight.reshape(self.out_channels, channels * k)  # (C_out, C*k), (c, j) order
        return _batched_matmul(weight.expand(batch, -1, -1), columns, self.bias)


class ConvAttentionBlock(nn.Module):
    """One encoder or decoder block (see the module docstring).

    Args:
        width: channels F of the state.
        kernel_size: odd k of the dilated conv and of the attention window.
        dilation: d (2 ** block index).
        dropout: dropout rate on the block input (and on cond for cross-attention). Dropout
            draws from the global torch RNG in training mode; it is inactive in eval mode.
        cond_dim: channels of the conditioning features; 0 = self-attention.
    """

    def __init__(
        self, width: int, kernel_size: int, dilation: int, dropout: float, cond_dim: int = 0
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.width = width
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.dropout = nn.Dropout(dropout)
        self.conv = DilatedConv(width, kernel_size, dilation)
        self.qkv = PointwiseConv(width, 3 * width)  # state -> q, k, v (holds the biases)
        self.cond_qk = PointwiseConv(cond_dim, 2 * width, bias=False) if cond_dim > 0 else None
        self.ffn = nn.Sequential(
            PointwiseConv(width, width), nn.ReLU(), PointwiseConv(width, width)
        )

    @property
    def is_cross(self) -> bool:
        return self.cond_qk is not None

    def project_cond(self, cond: torch.Tensor) -> torch.Tensor:
        """The conditioning's share of the query and key projections.

        Args:
            cond: (B, Dc, T) conditioning features (0 on padded frames).

        Returns:
            (B, 2F, T): ``[W_q,c cond ; W_k,c cond]`` (after this block's dropout on cond).
        """
        if self.cond_qk is None:
            raise RuntimeError("project_cond called on a self-attention block")
        return self.cond_qk(self.dropout(cond))

    def forward(
        self,
        x: torch.Tensor,
        fmask: FrameMask,
        key_mask: torch.Tensor,
        cond_qk: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Args:
            x: (B, F, T) state, 0 on padded frames.
            fmask: the batch's :class:`FrameMask`.
            key_mask: (B, k, T) bool from ``window_key_mask(fmask.valid, k, dilation)``.
            cond_qk: (B, 2F, T) from :meth:`project_cond`; required iff cross-attention.

        Returns:
            (B, F, T) new state, 0 on padded frames.
        """
        assert (cond_qk is not None) == self.is_cross, "cond_qk must be given iff cross-attention"
        h = self.dropout(x)  # (B, F, T)
        local = self.conv(h)  # (B, F, T)
        qkv = self.qkv(h)  # (B, 3F, T)
        qk, v = qkv[:, : 2 * self.width], qkv[:, 2 * self.width :]  # (B, 2F, T), (B, F, T)
        if cond_qk is not None:
            qk = qk + cond_qk  # W [x ; c] = W_x x + W_c c
        q, k = qk.chunk(2, dim=1)  # (B, F, T) each
        context = windowed_attention(q, k, v, key_mask, self.kernel_size, self.dilation)
        out = self.ffn(masked_instance_norm(local + context, fmask))  # (B, F, T)
        x = x + out
        return x if fmask.full else x * fmask.weight.to(x.dtype)
