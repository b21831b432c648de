"""Dilated local (windowed) attention: the one attention of the encoder and the decoder.

Frame ``t`` of a block with kernel ``k`` and dilation ``d`` attends to the ``k`` frames
``t + j * d`` for ``j`` in ``[-(k // 2), k // 2]``: the footprint of the block's dilated
convolution. Keys outside the sequence or on padded frames are masked. The keys and values of
every window are strided views of the zero-padded sequence (``unfold``), so scores are
``(B, k, T)`` and memory is linear in T (no ``T x T`` tensor).

Under autograd the attention is a :class:`torch.autograd.Function` whose forward and backward
are k shifted multiply-adds over the frames where the shift stays inside the sequence
(:func:`attend`, :func:`attend_backward`): no ``(B, C, k, T)`` window tensor is built or
differentiated. The training path of :mod:`.block` uses the same two functions. Where the
native CPU kernels are built (:mod:`.native`), each is one kernel call; otherwise three
helpers of k shifted PyTorch ops each (:func:`add_window_scores`, :func:`add_window_context`,
:func:`add_window_context_transposed`) do the work, with the same results to float rounding.

Encoder self-attention and decoder cross-attention differ only in how the block builds q, k
and v (see :mod:`.block`); both call :func:`windowed_attention`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import native


class FrameMask(NamedTuple):
    """A padding mask in the forms the blocks need, built once per forward pass.

    Attributes:
        valid: (B, T) bool, True = real frame.
        weight: (B, 1, T) float, 1.0 on real frames, 0.0 on padding.
        count: (B, 1, 1) float, real frames per video (at least 1).
        full: True when every frame is real (no padding anywhere): masking can be skipped.
    """

    valid: torch.Tensor
    weight: torch.Tensor
    count: torch.Tensor
    full: bool


def frame_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> FrameMask:
    """Build a :class:`FrameMask` from a (B, T) bool padding mask (True = real frame)."""
    if mask.dim() != 2 or mask.dtype != torch.bool:
        raise ValueError(f"padding mask must be (B, T) bool, got {tuple(mask.shape)} {mask.dtype}")
    weight = mask[:, None, :].to(dtype)  # (B, 1, T)
    count = weight.sum(dim=2, keepdim=True).clamp(min=1.0)  # (B, 1, 1)
    return FrameMask(mask, weight, count, bool(mask.all()))


def window_views(x: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    """The ``kernel_size`` dilated neighbours of every frame.

    Args:
        x: (B, C, T), taken as zero outside ``[0, T)``.

    Returns:
        (B, C, k, T) with ``out[:, :, j, t] = x[:, :, t + (j - k // 2) * dilation]`` (0 outside).
        Time stays the innermost (contiguous) axis, which keeps the elementwise work vectorised.
        Without autograd it is a strided view of the zero-padded x (no copy). With autograd it
        is a stack of k shifted slices (a copy): the backward of a strided (``unfold``) view
        materialises a gradient of the window's full span, ``(B, C, T, 2 * reach + 1)``, which
        at dilation 512 is hundreds of MB and seconds per block.
    """
    reach = (kernel_size // 2) * dilation  # frames each side
    padded = F.pad(x, (reach, reach))  # (B, C, T + 2 * reach)
    frames = x.shape[2]
    if torch.is_grad_enabled() and x.requires_grad:
        shifted = [padded[:, :, j * dilation : j * dilation + frames] for j in range(kernel_size)]
        return torch.stack(shifted, dim=2)  # (B, C, k, T)
    batch, channels, _ = padded.shape
    sb, sc, st = padded.stride()
    return padded.as_strided(
        (batch, channels, kernel_size, frames), (sb, sc, dilation * st, st)
    )  # (B, C, k, T) view


def shifts(frames: int, kernel_size: int, dilation: int) -> list[tuple[int, int, int, int]]:
    """The window positions as shifts: ``(j, o, lo, hi)`` with offset ``o = (j - k // 2) * d``
    and ``[lo, hi)`` the frames t whose neighbour ``t + o`` is inside ``[0, T)``. Positions no
    frame reaches (``|o| >= T``) are left out."""
    out = []
    for j in range(kernel_size):
        offset = (j - kernel_size // 2) * dilation
        lo, hi = max(0, -offset), min(frames, frames - offset)
        if hi > lo:
            out.append((j, offset, lo, hi))
    return out


def add_window_scores(
    scores: torch.Tensor, q: torch.Tensor, k: torch.Tensor, dilation: int
) -> torch.Tensor:
    """``scores[:, j, t] += q[:, :, t] . k[:, :, t + o_j]`` where the key is inside the sequence.

    Args:
        scores: (B, k, T), updated in place (entries without a key keep their value).
        q, k: (B, C, T).

    Returns:
        ``scores``.
    """
    for j, o, lo, hi in shifts(q.shape[2], scores.shape[1], dilation):
        scores[:, j, lo:hi] += (q[:, :, lo:hi] * k[:, :, lo + o : hi + o]).sum(dim=1)
    return scores


def add_window_context(
    out: torch.Tensor, v: torch.Tensor, weights: torch.Tensor, dilation: int
) -> torch.Tensor:
    """``out[:, :, t] += sum_j weights[:, j, t] * v[:, :, t + o_j]`` over keys in the sequence.

    Args:
        out: (B, Cv, T), updated in place.
        v: (B, Cv, T).
        weights: (B, k, T) attention weights.

    Returns:
        ``out``.
    """
    for j, o, lo, hi in shifts(v.shape[2], weights.shape[1], dilation):
        out[:, :, lo:hi].addcmul_(v[:, :, lo + o : hi + o], weights[:, j : j + 1, lo:hi])
    return out


def add_window_context_transposed(
    out: torch.Tensor, a: torch.Tensor, weights: torch.Tensor, dilation: int
) -> torch.Tensor:
    """The adjoint of :func:`add_window_context` in ``v``: every frame t sends
    ``weights[:, j, t] * a[:, :, t]`` to its neighbour ``t + o_j`` (inside the sequence), i.e.
    ``out[:, :, s] += sum_j weights[:, j, s - o_j] * a[:, :, s - o_j]``.

    Args:
        out: (B, C, T), updated in place.
        a: (B, C, T).
        weights: (B, k, T).

    Returns:
        ``out``.
    """
    for j, o, lo, hi in shifts(a.shape[2], weights.shape[1], dilation):
        out[:, :, lo + o : hi + o].addcmul_(a[:, :, lo:hi], weights[:, j : j + 1, lo:hi])
    return out


def window_key_mask(valid: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    """Which keys of every window exist: inside the sequence and on a real frame.

    Args:
        valid: (B, T) bool padding mask.

    Returns:
        (B, k, T) bool, True = frame t may attend to its j-th neighbour.
    """
    return window_views(valid[:, None, :], kernel_size, dilation)[:, 0].contiguous()  # (B, k, T)


def fused_ok(*tensors: torch.Tensor) -> bool:
    """Whether the hand-written autograd Functions apply: gradients are wanted, one floating
    dtype, no autocast (without autograd the strided-view path needs no Function)."""
    return (
        torch.is_grad_enabled()
        and any(t.requires_grad for t in tensors)
        and len({t.dtype for t in tensors}) == 1
        and not torch.is_autocast_enabled(tensors[0].device.type)
    )


DIFFACT_MASK_EPS = 1e-6
"""DiffAct adds ``log(mask + DIFFACT_MASK_EPS)`` to every window score."""


def diffact_windowed_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    kernel_size: int,
    dilation: int,
) -> torch.Tensor:
    """:func:`windowed_attention` with DiffAct's handling of window positions without a key
    (``model.attention_outside = diffact``): there the key and value are 0, every score gets
    ``log(mask + 1e-6)``, the softmax runs over the whole window and its weights are then
    multiplied by the 0/1 mask. So a masked position keeps weight ``1e-6 / Z`` in the softmax's
    denominator ``Z`` (and adds nothing): the weights of a frame near the sequence ends sum to
    less than 1. Padded frames are treated as outside (the result of a video alone).
    Plain PyTorch ops only (differentiable); shapes as :func:`windowed_attention`.
    """
    scale = q.shape[1] ** -0.5
    keys = window_views(k, kernel_size, dilation)  # (B, C, k, T), 0 outside the sequence
    values = window_views(v, kernel_size, dilation)  # (B, Cv, k, T)
    inside = key_mask.to(q.dtype)  # (B, k, T) 0/1
    scores = (q.unsqueeze(2) * keys).sum(dim=1) * scale * inside  # zero keys where masked
    scores = scores + torch.log(inside + DIFFACT_MASK_EPS)
    weights = torch.softmax(scores, dim=1) * inside  # (B, k, T)
    return (weights.unsqueeze(1) * values * inside.unsqueeze(1)).sum(dim=2)  # (B, Cv, T)


def windowed_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    kernel_size: int,
    dilation: int,
) -> torch.Tensor:
    """Single-head scaled dot-product attention over dilated local windows.

    Args:
        q: (B, C, T) queries.
        k: (B, C, T) keys.
        v: (B, Cv, T) values.
        key_mask: (B, k, T) bool from :func:`window_key_mask` (True = attend).
        kernel_size: window size k (odd).
        dilation: spacing d between the window's frames.

    Returns:
        (B, Cv, T). Every real frame attends at least to itself; rows whose keys are all
        masked (padded queries far from real frames) give finite garbage that callers zero.
    """
    scale = q.shape[1] ** -0.5
    if fused_ok(q, k, v):
        return _WindowedAttention.apply(q, k, v, key_mask, kernel_size, dilation, scale)
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))):
        return attend(q, k, v, key_mask, (kernel_size, dilation, scale))[1]  # no autograd
    keys = window_views(k, kernel_size, dilation)  # (B, C, k, T)
    values = window_views(v, kernel_size, dilation)  # (B, Cv, k, T)
    scores = (q.unsqueeze(2) * keys).sum(dim=1) * scale  # (B, k, T)
    scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=1).to(values.dtype)  # (B, k, T), over the window
    return (weights.unsqueeze(1) * values).sum(dim=2)  # (B, Cv, T)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    geometry: tuple[int, int, float],
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward of :func:`windowed_attention` as k shifted multiply-adds (no autograd).

    With the native kernels (:mod:`.native`) the scores, softmax and weighted sum of one chunk
    of frames run back to back in one call; otherwise as PyTorch ops.

    Args:
        q, k: (B, C, T); v: (B, Cv, T); key_mask: (B, k, T) bool.
        geometry: (kernel_size, dilation, scale).
        out: (B, Cv, T) to add the attention to in place (default: zeros).

    Returns:
        weights (B, k, T) (kept for the backward) and out (B, Cv, T).
    """
    kernel_size, dilation, scale = geometry
    out = v.new_zeros(v.shape) if out is None else out
    if native.applies(kernel_size, q, k, v, out):
        return native.window_attention_(out, q, k, v, key_mask, dilation, scale), out
    batch, _, frames = q.shape
    scores = q.new_zeros(batch, kernel_size, frames)  # (B, k, T); 0 = a zero-padded key
    add_window_scores(scores, q, k, dilation)
    scores.mul_(scale).masked_fill_(~key_mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=1)  # (B, k, T)
    return weights, add_window_context(out, v, weights, dilation)


def attend_backward(
    grad_out: torch.Tensor,
    saved: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    geometry: tuple[int, int, float],
    grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    """Backward of :func:`attend` as k shifted multiply-adds (no autograd).

    Args:
        grad_out: (B, Cv, T) gradient of the output.
        saved: (q, k, v, weights, key_mask) of the forward.
        geometry: (kernel_size, dilation, scale).
        grads: zero-filled buffers (views allowed) of q's, k's and v's shapes that receive
            the gradients of q, k and v.
    """
    q, k, v, weights, key_mask = saved
    kernel_size, dilation, scale = geometry
    if native.applies(kernel_size, grad_out, q, k, v, weights, *grads):
        native.window_attention_backward_(grads, grad_out, saved, dilation, scale)
        return
    grad_q, grad_k, grad_v = grads
    grad_weights = add_window_scores(torch.zeros_like(weights), grad_out, v, dilation)  # (B, k, T)
    # softmax backward; then masked scores get no gradient (masked_fill's backward)
    grad_scores = grad_weights.sub_((grad_weights * weights).sum(dim=1, keepdim=True))
    grad_scores.mul_(weights).masked_fill_(~key_mask, 0.0).mul_(scale)  # (B, k, T)
    add_window_context(grad_q, k, grad_scores, dilation)
    add_window_context_transposed(grad_k, q, grad_scores, dilation)
    add_window_context_transposed(grad_v, grad_out, weights, dilation)


class _WindowedAttention(torch.autograd.Function):
    """:func:`windowed_attention` under autograd: :func:`attend` / :func:`attend_backward`."""

    @staticmethod
    def forward(ctx, q, k, v, key_mask, kernel_size, dilation, scale):  # type: ignore[override]
        geometry = (kernel_size, dilation, scale)
        weights, out = attend(q, k, v, key_mask, geometry)
        ctx.save_for_backward(q, k, v, weights, key_mask)
        ctx.geometry = geometry
        return out  # (B, Cv, T)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        saved = ctx.saved_tensors
        grads = tuple(torch.zeros_like(t) for t in saved[:3])
        attend_backward(grad_out, saved, ctx.geometry, grads)
        return (*grads, None, None, None, None)
