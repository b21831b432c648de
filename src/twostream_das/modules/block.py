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
import torch.nn.functional as F
from torch import nn

from . import native
from .attention import (
    FrameMask,
    attend,
    attend_backward,
    diffact_windowed_attention,
    fused_ok,
    shifts,
    window_views,
    windowed_attention,
)

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
    if x.dtype in (torch.float32, torch.float64) and fused_ok(x):
        weight = None if fmask.full else fmask.weight.to(x.dtype)
        return _InstanceNorm.apply(x, weight, fmask.count.to(x.dtype))
    xf = x.float()
    if fmask.full:  # no padding: group norm with one channel per group is instance norm, and
        # its one fused kernel is 2-9x faster on CPU than separate ops or F.instance_norm
        return F.group_norm(xf, xf.shape[1], eps=NORM_EPS).to(x.dtype)
    mean = (xf * fmask.weight).sum(dim=2, keepdim=True) / fmask.count  # (B, C, 1)
    centred = (xf - mean) * fmask.weight  # (B, C, T), 0 on padding
    var = centred.square().sum(dim=2, keepdim=True) / fmask.count  # (B, C, 1)
    return (centred * torch.rsqrt(var + NORM_EPS)).to(x.dtype)


class _InstanceNorm(torch.autograd.Function):
    """:func:`masked_instance_norm` under autograd (float32/64), with the closed-form backward
    ``dx = r * (dy - mean(dy) - y * mean(dy * y))`` (means over real frames, 0 on padding)."""

    @staticmethod
    def forward(ctx, x, weight, count):  # type: ignore[override]
        # x (B, C, T); weight (B, 1, T) 0/1 or None (no padding); count (B, 1, 1) real frames
        batch, channels, frames = x.shape
        if weight is None:  # group norm, one channel per group: one fused kernel
            y, _, rstd = torch.native_group_norm(
                x, None, None, batch, channels, frames, channels, NORM_EPS
            )  # (B, C, T), _, (B, C)
            rstd = rstd[:, :, None]  # (B, C, 1)
        else:
            mean = (x * weight).sum(dim=2, keepdim=True) / count  # (B, C, 1)
            centred = (x - mean).mul_(weight)  # (B, C, T), 0 on padding
            var = centred.square().sum(dim=2, keepdim=True) / count  # (B, C, 1)
            rstd = torch.rsqrt(var + NORM_EPS)  # (B, C, 1)
            y = centred.mul_(rstd)  # (B, C, T)
        ctx.save_for_backward(y, rstd, weight, count)
        return y

    @staticmethod
    def backward(ctx, grad_y):  # type: ignore[override]
        y, rstd, weight, count = ctx.saved_tensors
        if weight is None:
            mean_g = grad_y.mean(dim=2, keepdim=True)  # (B, C, 1)
            mean_gy = (grad_y * y).mean(dim=2, keepdim=True)  # (B, C, 1)
            return (grad_y - mean_g).sub_(y * mean_gy).mul_(rstd), None, None
        g = grad_y * weight  # (B, C, T), real frames only
        mean_g = g.sum(dim=2, keepdim=True) / count
        mean_gy = (g * y).sum(dim=2, keepdim=True) / count
        return (g - mean_g).sub_(y * mean_gy).mul_(rstd).mul_(weight), None, None


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


SPLITMIX_GAMMA = 0x9E3779B97F4A7C15  # splitmix64's constants (Steele, Lea and Flood 2014)
SPLITMIX_MIX = ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None))


def _int64(value: int) -> int:
    """A 64-bit pattern as the signed int64 torch stores."""
    return value - 2**64 if value >= 2**63 else value


def dropout_shares(seed: int, count: int) -> torch.Tensor:
    """(count,) int16 dropout shares, uniform in [-2^15, 2^15): draw d is splitmix64's output
    for counter d + 1 from ``seed``, and its four 16-bit halves (in memory order) are the shares
    of elements 4d .. 4d + 3. int64 tensor ops wrap like the native kernel's unsigned ones;
    the right shifts are made logical by masking the sign bits."""
    z = torch.arange(1, (count + 3) // 4 + 1, dtype=torch.int64) * _int64(SPLITMIX_GAMMA)
    z += seed
    for shift, factor in SPLITMIX_MIX:
        z ^= (z >> shift) & ((1 << (64 - shift)) - 1)
        if factor is not None:
            z *= _int64(factor)
    return z.view(torch.int16)[:count]


class BlockDropout(nn.Dropout):
    """``nn.Dropout`` (same module, no parameters) whose CPU training mask costs one draw of
    the global torch RNG: a 64-bit seed, from which every element gets a 16-bit share by a
    counter-based hash (:func:`dropout_shares`). An element is kept when its share is below
    ``round((1 - p) * 2 ** 16)``: the keep probability is 1 - p to within 2 ** -17 (exact for
    p = 0.5); kept elements are scaled by ``1 / (1 - p)`` as in ``nn.Dropout``. Drawing
    ``bernoulli_`` (~10 ns per element) or even 64-bit ``random_`` (~1.4 ns per element) from
    the global generator cost more than the rest of a width-24 decoder block.

    Where the native kernels are built, the hash and the masking are one pass forward and one
    backward, and no mask is stored; elsewhere the same shares come from tensor ops, so a seed
    gives the same masks either way. Other devices use ``nn.Dropout``'s kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p
        if not self.training or p == 0.0 or x.device.type != "cpu" or not x.is_floating_point():
            return super().forward(x)
        if p == 1.0:
            return x * 0.0
        threshold = round((1.0 - p) * 2**16) - 2**15
        scale = 1.0 / (1.0 - p)
        if threshold >= 2**15:  # p < 2^-17: every share is kept (and 2^15 is no int16)
            return x * scale
        seed = int(torch.empty((), dtype=torch.int64).random_(-(2**63), None))
        if x.dtype in native.DTYPES and x.is_contiguous() and native.available():
            return _NativeDropout.apply(x, seed, threshold, scale)
        shares = dropout_shares(seed, x.numel()).view(x.shape)
        return x * (shares < threshold).to(x.dtype).mul_(scale)  # 0 or 1 / (1 - p)


class _NativeDropout(torch.autograd.Function):
    """:class:`BlockDropout`'s masking as one native pass; the backward is the same pass over
    the gradient (the seed is all that is kept)."""

    @staticmethod
    def forward(ctx, x, seed, threshold, scale):  # type: ignore[override]
        ctx.mask = (seed, threshold, scale)
        return native.dropout_apply(x, seed, threshold, scale)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return native.dropout_apply(grad.contiguous(), *ctx.mask), None, None, None


class _ConvAttention(torch.autograd.Function):
    """``DilatedConv(h) + windowed attention`` of a block from one packed projection, under
    autograd.

    Input ``z = W h`` (B, (k + 3) F, T) for the stacked matrix ``W = [W_0; ...; W_{k-1}; W_q;
    W_k; W_v]``, ``W_j`` the conv's tap j. The conv is the sum of the taps' projections shifted
    in time, ``local[t] = b + sum_j z_j[t + (j - k // 2) d]`` (zero outside the sequence), so
    its backward is k shifted copies of the output gradient: nothing of the window's size is
    built, forward or backward, and the gradient of z is one tensor (one matmul backward).
    """

    @staticmethod
    def forward(ctx, z, conv_bias, qkv_bias, qk_addend, key_mask, width, kernel_size, dilation):  # type: ignore[override]  # noqa: E501
        # z (B, (k+3)F, T); biases (F,), (3F,); qk_addend (B, 2F, T) or None; key_mask (B, k, T)
        taps = kernel_size * width
        qkv = z[:, taps:] + qkv_bias[:, None]  # (B, 3F, T)
        if qk_addend is not None:
            qkv[:, : 2 * width] += qk_addend  # W [x ; c] = W_x x + W_c c
        q, k, v = qkv[:, :width], qkv[:, width : 2 * width], qkv[:, 2 * width :]
        geometry = (kernel_size, dilation, width**-0.5)
        weights, out = attend(q, k, v, key_mask, geometry)  # out (B, F, T)
        out += conv_bias[:, None]
        if native.applies(kernel_size, out, z):
            native.window_taps_(out, z[:, :taps], kernel_size, dilation)
        else:
            for j, o, lo, hi in shifts(z.shape[2], kernel_size, dilation):
                out[:, :, lo:hi] += z[:, j * width : (j + 1) * width, lo + o : hi + o]
        ctx.save_for_backward(qkv, weights, key_mask)
        ctx.geometry = (width, *geometry)
        return out  # (B, F, T)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        qkv, weights, key_mask = ctx.saved_tensors
        width, *geometry = ctx.geometry
        kernel_size, dilation, _ = geometry
        batch, _, frames = qkv.shape
        taps = kernel_size * width
        grad_z = qkv.new_empty(batch, taps + 3 * width, frames)  # (B, (k+3)F, T)
        grad_z[:, taps:].zero_()  # the attention's gradients accumulate there
        _taps_backward(grad_z[:, :taps], grad_out, kernel_size, dilation)
        grad_qkv = grad_z[:, taps:]  # (B, 3F, T)
        saved = (qkv[:, :width], qkv[:, width : 2 * width], qkv[:, 2 * width :], weights, key_mask)
        grads = (grad_qkv[:, :width], grad_qkv[:, width : 2 * width], grad_qkv[:, 2 * width :])
        attend_backward(grad_out, saved, tuple(geometry), grads)
        grad_conv_bias = grad_out.sum(dim=(0, 2)) if ctx.needs_input_grad[1] else None
        grad_qkv_bias = grad_qkv.sum(dim=(0, 2)) if ctx.needs_input_grad[2] else None
        grad_addend = grad_qkv[:, : 2 * width] if ctx.needs_input_grad[3] else None
        return grad_z, grad_conv_bias, grad_qkv_bias, grad_addend, None, None, None, None


def _taps_backward(out: torch.Tensor, grad_out: torch.Tensor, taps: int, dilation: int) -> None:
    """``out[:, j F + c, s] = grad_out[:, c, s - o_j]`` inside the sequence, else 0: tap j's
    rows of the packed projection's gradient (out (B, k F, T), grad_out (B, F, T))."""
    width, frames = grad_out.shape[1], grad_out.shape[2]
    reached = {j: (o, lo, hi) for j, o, lo, hi in shifts(frames, taps, dilation)}
    for j in range(taps):
        rows = out[:, j * width : (j + 1) * width]
        if j not in reached:  # no frame's neighbour o_j away is inside the sequence
            rows.zero_()
            continue
        o, lo, hi = reached[j]
        rows[:, :, lo + o : hi + o] = grad_out[:, :, lo:hi]
        rows[:, :, : lo + o].zero_()
        rows[:, :, hi + o :].zero_()


class ConvAttentionBlock(nn.Module):
    """One encoder or decoder block (see the module docstring).

    Args:
        width: channels F of the state.
        kernel_size: odd k of the dilated conv and of the attention window.
        dilation: d (2 ** block index).
        dropout: dropout rate on the block input (and on cond for cross-attention). Dropout
            draws from the global torch RNG in training mode; it is inactive in eval mode.
        cond_dim: channels of the conditioning features; 0 = self-attention.
        diffact_outside: DiffAct's handling of window positions outside the sequence
            (:func:`~.attention.diffact_windowed_attention`) instead of excluding them; only
            the plain PyTorch path implements it, so the block then never takes the fused
            training Function or the native kernels.
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
        self.dropout = BlockDropout(dropout)
        self.conv = DilatedConv(width, kernel_size, dilation)
        self.qkv = PointwiseConv(width, 3 * width)  # state -> q, k, v (holds the biases)
        self.cond_qk = PointwiseConv(cond_dim, 2 * width, bias=False) if cond_dim > 0 else None
        self.ffn = nn.Sequential(
            PointwiseConv(width, width), nn.ReLU(), PointwiseConv(width, width)
        )

    def _conv_attention(
        self, h: torch.Tensor, key_mask: torch.Tensor, cond_qk: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """``conv(h) + attention(qkv(h) [+ cond_qk])`` via :class:`_ConvAttention`: (B, F, T)."""
        width, k = self.width, self.kernel_size
        taps = self.conv.weight.permute(2, 0, 1).reshape(k * width, width)  # (kF, F), tap-major
        weight = torch.cat([taps, self.qkv.weight[:, :, 0]])  # ((k+3)F, F)
        z = torch.bmm(weight.expand(h.shape[0], -1, -1), h)  # (B, (k+3)F, T), biases added later
        return _ConvAttention.apply(
            z, self.conv.bias, self.qkv.bias, cond_qk, key_mask, width, k, self.dilation
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
        parts = [h, self.qkv.weight] if cond_qk is None else [h, self.qkv.weight, cond_qk]
        if fused_ok(*parts) and not self.diffact_outside:  # training: one Function, same math
            mixed = self._conv_attention(h, key_mask, cond_qk)  # (B, F, T)
        else:
            local = self.conv(h)  # (B, F, T)
            qkv = self.qkv(h)  # (B, 3F, T)
            qk, v = qkv[:, : 2 * self.width], qkv[:, 2 * self.width :]  # (B, 2F, T), (B, F, T)
            if cond_qk is not None:
                qk = qk + cond_qk  # W [x ; c] = W_x x + W_c c
            q, k = qk.chunk(2, dim=1)  # (B, F, T) each
            attention = diffact_windowed_attention if self.diffact_outside else windowed_attention
            context = attention(q, k, v, key_mask, self.kernel_size, self.dilation)
            mixed = local + context
        out = self.ffn(masked_instance_norm(mixed, fmask))  # (B, F, T)
        x = x + out
        return x if fmask.full else x * fmask.weight.to(x.dtype)
