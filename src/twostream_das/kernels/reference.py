"""The ``reference`` backend: every op of :mod:`.ops` in plain PyTorch, differentiated by
autograd. This is the spec; the fast backends (:mod:`.fast`) are tested against it.

Shapes: states and features ``(B, C, T)``; window key masks ``(B, k, T)`` bool from
:func:`~.windows.window_key_mask`. Weights are one stream's (no leading stream axis).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .backends import Backend
from .registry import register
from .windows import FrameMask, window_stack

NORM_EPS = 1e-5
"""Variance epsilon of the instance norm (``nn.InstanceNorm1d``'s default, as in ASFormer)."""

DIFFACT_MASK_EPS = 1e-6
"""DiffAct adds ``log(mask + DIFFACT_MASK_EPS)`` to every window score."""


def bmm(weight: torch.Tensor, x: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``weight @ x (+ bias)`` in one BLAS call: weight (O, I) for every row or (N, O, I) per
    row, x (N, I, T), bias broadcastable to (N, O, T) -> (N, O, T)."""
    if weight.dim() == 2:
        weight = weight.expand(x.shape[0], -1, -1)  # (N, O, I), no copy
    if bias is None:
        return torch.bmm(weight, x)
    return torch.baddbmm(bias, weight, x)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """A 1x1 conv: x (N, I, T), weight (O, I) or (N, O, I), bias (O,) or (N, O) or None ->
    (N, O, T)."""
    return bmm(weight, x, None if bias is None else bias[..., None])


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """``F.dropout`` in training mode (the global torch RNG draws the mask)."""
    return F.dropout(x, p, training=True)


def instance_norm(x: torch.Tensor, fmask: FrameMask) -> torch.Tensor:
    """Instance norm over the real frames (no affine, biased variance; statistics in
    float32 or float64).

    Equals ``nn.InstanceNorm1d(C)`` on a video without padding; 0 on padded frames.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    xf, weight, count = x.to(dtype), fmask.weight.to(dtype), fmask.count.to(dtype)
    mean = (xf * weight).sum(dim=2, keepdim=True) / count  # (B, C, 1)
    centred = (xf - mean) * weight  # (B, C, T), 0 on padding
    var = centred.square().sum(dim=2, keepdim=True) / count  # (B, C, 1)
    return (centred * torch.rsqrt(var + NORM_EPS)).to(x.dtype)


def windowed_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    kernel_size: int,
    dilation: int,
    diffact_outside: bool = False,
) -> torch.Tensor:
    """Single-head scaled dot-product attention of every frame over its window.

    Args:
        q, k: (B, C, T); v: (B, Cv, T); key_mask: (B, k, T) bool (True = the key exists).
        diffact_outside: DiffAct's handling of window positions without a key
            (``model.attention_outside = diffact``): there the key and value are 0, every score
            gets ``log(mask + 1e-6)``, the softmax runs over the whole window and its weights
            are then multiplied by the 0/1 mask, so the weights of a frame near the sequence
            ends sum to less than 1. Otherwise (exact) such positions are excluded.

    Returns:
        (B, Cv, T). Rows whose keys are all masked (padded queries far from real frames) give
        finite values that the block zeroes.
    """
    scale = q.shape[1] ** -0.5
    keys = window_stack(k, kernel_size, dilation)  # (B, C, k, T), 0 outside the sequence
    values = window_stack(v, kernel_size, dilation)  # (B, Cv, k, T)
    scores = (q.unsqueeze(2) * keys).sum(dim=1) * scale  # (B, k, T)
    if diffact_outside:
        inside = key_mask.to(q.dtype)  # (B, k, T) 0/1
        scores = scores * inside + torch.log(inside + DIFFACT_MASK_EPS)
        weights = torch.softmax(scores, dim=1) * inside  # (B, k, T)
        return (weights.unsqueeze(1) * values * inside.unsqueeze(1)).sum(dim=2)  # (B, Cv, T)
    scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=1).to(values.dtype)  # (B, k, T), over the window
    return (weights.unsqueeze(1) * values).sum(dim=2)  # (B, Cv, T)


def conv_attention(
    h: torch.Tensor,
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor,
    qkv_weight: torch.Tensor,
    qkv_in: torch.Tensor,
    key_mask: torch.Tensor,
    geometry: tuple[int, int],
    diffact_outside: bool = False,
) -> torch.Tensor:
    """``DilatedConv(h) + WindowedAttention(q, k, v)`` with ``[q; k; v] = W_qkv h + qkv_in``.

    Args:
        h: (B, F, T) block input.
        conv_weight: (F, F * k) the conv's weight, ``(c_in, tap)`` column order; conv_bias (F,).
        qkv_weight: (3F, F); qkv_in: (3F, 1) the qkv bias, or (B, 3F, T) the bias plus the
            conditioning's share of q and k (cross-attention).
        key_mask: (B, k, T) bool.
        geometry: (kernel_size k, dilation d).

    Returns:
        (B, F, T).
    """
    kernel_size, dilation = geometry
    width = h.shape[1]
    weight = conv_weight.reshape(width, width, kernel_size)  # (F_out, F_in, k)
    local = F.conv1d(
        h, weight, conv_bias, padding=(kernel_size // 2) * dilation, dilation=dilation
    )  # (B, F, T)
    qkv = torch.matmul(qkv_weight, h) + qkv_in  # (B, 3F, T)
    q, k, v = qkv.split(width, dim=1)  # (B, F, T) each
    return local + windowed_attention(q, k, v, key_mask, kernel_size, dilation, diffact_outside)


# the reference implements every op and accepts every argument (:mod:`.registry`)
register("dropout", Backend.REFERENCE, dropout)
register("instance_norm", Backend.REFERENCE, instance_norm)
register("windowed_attention", Backend.REFERENCE, windowed_attention)
register("conv_attention", Backend.REFERENCE, conv_attention)
