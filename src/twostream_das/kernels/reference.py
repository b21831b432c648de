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
from .windows import FrameMask

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

    Frame ``t`` attends to the ``k`` keys ``t + j * d``, ``j`` in ``[-(k // 2), k // 2]``
    (:mod:`.windows`). Computed in blocks (:func:`block_layout`): the frames ``t = m d + r``
    sharing a residue ``r`` form one sequence whose windows are ``k`` consecutive rows ``m``;
    ``w`` rows of it (:func:`rows_per_block`) attend to the ``w + k - 1`` rows around them
    with two matmuls, and positions outside each row's own window are masked out. The same
    scores and weights as taking every window apart, as two matmuls over small blocks
    instead of ``k`` copies of the keys and values: what an exported graph runs fast.

    Args:
        q, k: (B, C, T); v: (B, Cv, T); key_mask: (B, k, T) bool from
            :func:`~.windows.window_key_mask` (True = the key exists; its centre row, the
            frames' own, is the padding mask this reads).
        diffact_outside: DiffAct's handling of window positions without a key
            (``model.attention_outside = diffact``): there the key and value are 0, every score
            gets ``log(mask + 1e-6)``, the softmax runs over the whole window and its weights
            are then multiplied by the 0/1 mask, so the weights of a frame near the sequence
            ends sum to less than 1. Otherwise (exact) such positions are excluded.

    Returns:
        (B, Cv, T). Rows whose keys are all masked (padded queries far from real frames) give
        finite values that the block zeroes.
    """
    batch, channels, frames = q.shape
    half = kernel_size // 2
    rows = rows_per_block(kernel_size, dilation)
    blocks = (frames + rows * dilation - 1) // (rows * dilation)  # n, rounded up (>= 0 only:
    # an exported graph's integer division truncates)
    queries = block_layout(q * channels**-0.5, dilation, rows, blocks, 0)  # (B, n, d, w, C)
    keys = key_blocks(k, dilation, rows, blocks, half)  # (B, n, d, w + 2h, C)
    values = key_blocks(v, dilation, rows, blocks, half)  # (B, n, d, w + 2h, Cv)
    valid = key_mask[:, half : half + 1].to(q.dtype)  # (B, 1, T), the frames' padding mask
    exists = key_blocks(valid, dilation, rows, blocks, half).transpose(3, 4)  # (B, n, d, 1, W)
    span = torch.arange(rows + 2 * half, device=q.device)  # key positions of a block
    offset = span - torch.arange(rows, device=q.device)[:, None]  # (w, w + 2h)
    window = (offset >= 0) & (offset <= 2 * half)  # row i's k keys
    scores = torch.matmul(queries, keys.transpose(3, 4))  # (B, n, d, w, w + 2h)
    lowest = torch.finfo(scores.dtype).min
    if diffact_outside:
        inside = exists * window.to(q.dtype)  # (B, n, d, w, W) 0/1
        scores = scores * inside + torch.log(inside + DIFFACT_MASK_EPS)
        scores = scores.masked_fill(~window, lowest)  # outside the window: no share
        weights = torch.softmax(scores, dim=-1) * inside
    else:
        scores = scores.masked_fill(~(window & (exists > 0)), lowest)
        weights = torch.softmax(scores, dim=-1)  # (B, n, d, w, w + 2h), over the window
    out = torch.matmul(weights, values)  # (B, n, d, w, Cv)
    out = out.transpose(2, 3).reshape(batch, -1, v.shape[1])  # (B, n w d, Cv), time-major
    return out.transpose(1, 2)[:, :, :frames]  # (B, Cv, T)


BLOCK_SPAN = 256
"""Frames a block of :func:`windowed_attention` spans at most (``w d``) beyond its minimum of
``k - 1`` rows: the padding to whole blocks stays below it."""

BLOCK_ROWS = 8
"""Rows a block of :func:`windowed_attention` holds at most (the queries of one matmul)."""


def rows_per_block(kernel_size: int, dilation: int) -> int:
    """``w``, the rows (frames ``d`` apart) of one block: at least ``k - 1`` (a block's keys
    reach into the next block only), else :data:`BLOCK_ROWS` or fewer where the block would
    span more than :data:`BLOCK_SPAN` frames."""
    return max(kernel_size - 1, 1, min(BLOCK_ROWS, BLOCK_SPAN // dilation))


def block_layout(x: torch.Tensor, dilation: int, rows: int, blocks: int, lead: int) -> torch.Tensor:
    """x (B, X, T) as ``blocks`` blocks of ``rows`` rows, time-major: (B, n, d, w, X) with
    frame ``t = m d + r`` of row ``m = b w + i - lead`` at ``[:, b, r, i]``, 0 outside
    ``[0, T)``. Two transposes that each move one axis (cheap in any runtime)."""
    batch, width, frames = x.shape
    total = blocks * rows * dilation
    padded = F.pad(x, (lead * dilation, total - frames - lead * dilation))  # (B, X, n w d)
    major = padded.transpose(1, 2).reshape(batch, blocks, rows, dilation, width)  # (B, n, w, d, X)
    return major.transpose(2, 3)  # (B, n, d, w, X)


def key_blocks(x: torch.Tensor, dilation: int, rows: int, blocks: int, half: int) -> torch.Tensor:
    """The keys (or values) around every block of queries: x (B, X, T) -> (B, n, d, w + 2h, X),
    entry ``p`` of block ``b`` being row ``b w - h + p`` (0 outside the sequence): the block's
    own ``w`` rows shifted by ``h``, then the next block's first ``2h``."""
    grid = block_layout(x, dilation, rows, blocks + 1, half)  # (B, n + 1, d, w, X)
    if half == 0:
        return grid[:, :blocks]
    return torch.cat([grid[:, :blocks], grid[:, 1:, :, : 2 * half]], dim=3)


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
