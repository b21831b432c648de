"""The ``shifted`` and ``native`` backends of the ops (:mod:`.ops`; the switch: :mod:`.backends`).

Same math as :mod:`.reference`, written for speed:

- the window of the attention and the conv's taps as k shifted multiply-adds over the frames
  where the shift stays inside the sequence (:func:`shifts`): no ``(B, C, k, T)`` window
  tensor is built or differentiated; both handlings of the window positions without a key
  (exact, and DiffAct's, :func:`diffact_weights`);
- hand-written backwards (:class:`_WindowedAttention`, :class:`_ConvAttention`,
  :class:`_InstanceNorm`); in training the conv and q, k, v of a block come from one packed
  projection ``z = [W_0; ...; W_{k-1}; W_q; W_k; W_v] h``;
- dropout masks hashed from one seed per call (:func:`dropout`);
- without autograd, the weights may carry a leading axis of N rows (the stacked streams of
  :mod:`twostream_das.prediction.stacked`): every matmul is a batched one.

The ``native`` backend is this code with ``kernels=True``: where a kernel takes the tensors
(:func:`.native.applies`: CPU, float32/64, no autograd), the multiply-adds and the dropout pass
are one kernel call each; otherwise (and in ``shifted``, ``kernels=False``) PyTorch ops do the
same work, with the same results to float rounding. Both backends register their ops at the end
of this module (:mod:`.registry`); the choice reaches this code as ``kernels``, never read here
from the switch, and an autograd Function keeps its forward's choice for its backward.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from . import native
from .backends import Backend
from .reference import DIFFACT_MASK_EPS, NORM_EPS, bmm
from .registry import register
from .windows import FrameMask, shifts, window_views


def differentiable(*tensors: torch.Tensor) -> bool:
    """Whether the hand-written backwards may take these tensors: one dtype, no autocast."""
    return len({t.dtype for t in tensors}) == 1 and not torch.is_autocast_enabled(
        tensors[0].device.type
    )


def wants_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd records an op on these tensors."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


# --- windowed attention: k shifted multiply-adds --------------------------------------


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


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    geometry: tuple[int, int, float],
    out: torch.Tensor | None = None,
    kernels: bool = False,
    diffact_outside: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward of :func:`windowed_attention` as k shifted multiply-adds (no autograd).

    With the native kernels (:mod:`.native`) the scores, softmax and weighted sum of one chunk
    of frames run back to back in one call; otherwise as PyTorch ops.

    Args:
        q, k: (B, C, T); v: (B, Cv, T); key_mask: (B, k, T) bool.
        geometry: (kernel_size, dilation, scale).
        out: (B, Cv, T) to add the attention to in place (default: zeros).
        kernels: use the native kernel where it takes the tensors (the ``native`` backend).
        diffact_outside: DiffAct's weights at the positions without a key
            (:func:`diffact_weights`) instead of none there.

    Returns:
        weights (B, k, T) (kept for the backward; 0 where the key is masked, but for rows
        without any key in exact mode, which weigh their k positions alike) and out (B, Cv, T).
    """
    kernel_size, dilation, scale = geometry
    out = v.new_zeros(v.shape) if out is None else out
    if kernels and native.applies(kernel_size, q, k, v, out):
        eps = DIFFACT_MASK_EPS if diffact_outside else None
        return native.window_attention_(out, q, k, v, key_mask, dilation, scale, eps), out
    batch, _, frames = q.shape
    scores = q.new_zeros(batch, kernel_size, frames)  # (B, k, T); 0 = a zero-padded key
    add_window_scores(scores, q, k, dilation).mul_(scale)
    if diffact_outside:
        weights = diffact_weights(scores, key_mask)
    else:
        scores.masked_fill_(~key_mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1)  # (B, k, T)
    return weights, add_window_context(out, v, weights, dilation)


def diffact_weights(scores: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """DiffAct's window weights (``model.attention_outside = diffact``), as
    :func:`.reference.windowed_attention` with ``diffact_outside``: every score gets ``log(mask
    + eps)`` (``log(1 + eps)`` where the key exists, ``log(eps)`` alone where it does not, the
    key being 0 there), the softmax runs over all k positions, and the weights without a key
    are then 0, so a frame near the sequence ends weighs its keys less than 1 in all.

    The backward needs nothing of its own: with these weights ``w`` (0 where masked), the
    gradient of the raw scores is ``w (g - sum_j w_j g_j)`` as in exact mode
    (:func:`attend_backward`).

    Args:
        scores: (B, k, T) scaled scores ``scale q . k_j`` (0 where the key is outside the
            sequence), overwritten.
        key_mask: (B, k, T) bool.

    Returns:
        (B, k, T) weights.
    """
    # the two biases in the scores' dtype, as the reference computes log(mask + eps)
    biases = torch.log(torch.tensor([1.0, 0.0], dtype=scores.dtype) + DIFFACT_MASK_EPS)
    inside, outside = biases.tolist()
    scores.add_(inside).masked_fill_(~key_mask, outside)
    return torch.softmax(scores, dim=1).masked_fill_(~key_mask, 0.0)  # (B, k, T)


def attend_backward(
    grad_out: torch.Tensor,
    saved: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    geometry: tuple[int, int, float],
    grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    kernels: bool = False,
) -> None:
    """Backward of :func:`attend` as k shifted multiply-adds (no autograd), for both
    handlings of the positions without a key (the saved weights carry the difference).

    Args:
        grad_out: (B, Cv, T) gradient of the output.
        saved: (q, k, v, weights, key_mask) of the forward.
        geometry: (kernel_size, dilation, scale).
        grads: zero-filled buffers (views allowed) of q's, k's and v's shapes that receive
            the gradients of q, k and v.
        kernels: use the native kernel where it takes the tensors.
    """
    q, k, v, weights, key_mask = saved
    kernel_size, dilation, scale = geometry
    if kernels and native.applies(kernel_size, grad_out, q, k, v, weights, *grads):
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
    def forward(ctx, q, k, v, key_mask, kernel_size, dilation, scale, kernels, diffact_outside):  # type: ignore[override]  # noqa: E501
        geometry = (kernel_size, dilation, scale)
        weights, out = attend(q, k, v, key_mask, geometry, None, kernels, diffact_outside)
        ctx.save_for_backward(q, k, v, weights, key_mask)
        ctx.geometry, ctx.kernels = geometry, kernels
        return out  # (B, Cv, T)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        saved = ctx.saved_tensors
        grads = tuple(torch.zeros_like(t) for t in saved[:3])
        attend_backward(grad_out, saved, ctx.geometry, grads, ctx.kernels)
        return (*grads, None, None, None, None, None, None)


def windowed_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    kernel_size: int,
    dilation: int,
    diffact_outside: bool = False,
    kernels: bool = False,
) -> torch.Tensor:
    """:func:`.reference.windowed_attention` as shifted multiply-adds; under autograd the
    hand-written :class:`_WindowedAttention`."""
    scale = q.shape[1] ** -0.5
    if wants_grad(q, k, v):
        return _WindowedAttention.apply(
            q, k, v, key_mask, kernel_size, dilation, scale, kernels, diffact_outside
        )
    geometry = (kernel_size, dilation, scale)
    return attend(q, k, v, key_mask, geometry, None, kernels, diffact_outside)[1]


# --- the block's conv + attention -------------------------------------------------


def conv_attention(
    h: torch.Tensor,
    conv_weight: torch.Tensor,
    conv_bias: torch.Tensor,
    qkv_weight: torch.Tensor,
    qkv_in: torch.Tensor,
    key_mask: torch.Tensor,
    geometry: tuple[int, int],
    diffact_outside: bool = False,
    kernels: bool = False,
) -> torch.Tensor:
    """:func:`.reference.conv_attention`; under autograd :class:`_ConvAttention` from one packed
    projection; without it the weights may be per row: conv_weight (N, F, F * k), conv_bias
    (N, F), qkv_weight (N, 3F, F) for h (N, F, T)."""
    kernel_size, dilation = geometry
    batch, width, frames = h.shape
    scale = width**-0.5
    if wants_grad(h, conv_weight, qkv_weight, qkv_in):
        taps = conv_weight.reshape(width, width, kernel_size).permute(2, 0, 1)  # (k, F, F)
        weight = torch.cat([taps.reshape(kernel_size * width, width), qkv_weight])  # ((k+3)F, F)
        z = bmm(weight, h, None)  # (B, (k+3)F, T), biases added in the Function
        return _ConvAttention.apply(
            z, conv_bias, qkv_in, key_mask, (width, kernel_size, dilation, scale),
            kernels, diffact_outside,
        )  # fmt: skip
    columns = window_views(h, kernel_size, dilation).reshape(batch, width * kernel_size, frames)
    local = bmm(conv_weight, columns, conv_bias[..., None])  # (N, F, T)
    qkv = bmm(qkv_weight, h, qkv_in)  # (N, 3F, T)
    q, k, v = qkv.split(width, dim=1)  # (N, F, T) each
    # the attention as k shifted multiply-adds, added onto the conv's output in place
    attend(q, k, v, key_mask, (kernel_size, dilation, scale), local, kernels, diffact_outside)
    return local


class _ConvAttention(torch.autograd.Function):
    """``DilatedConv(h) + windowed attention`` of a block from one packed projection, under
    autograd.

    Input ``z = W h`` (B, (k + 3) F, T) for the packed matrix ``W = [W_0; ...; W_{k-1}; W_q;
    W_k; W_v]``, ``W_j`` the conv's tap j; ``qkv_in`` (3F, 1) or (B, 3F, T) is added to the
    q, k, v rows (the bias, or the bias plus the conditioning's share). The conv is the sum of
    the taps' projections shifted in time, ``local[t] = b + sum_j z_j[t + (j - k // 2) d]``
    (zero outside the sequence), so its backward is k shifted copies of the output gradient:
    nothing of the window's size is built, forward or backward, and the gradient of z is one
    tensor (one matmul backward).
    """

    @staticmethod
    def forward(ctx, z, conv_bias, qkv_in, key_mask, shape, kernels, diffact_outside):  # type: ignore[override]  # noqa: E501
        # z (B, (k+3)F, T); conv_bias (F,); qkv_in (3F, 1) or (B, 3F, T); key_mask (B, k, T);
        # shape (F, kernel_size, dilation, scale)
        width, kernel_size, dilation, scale = shape
        taps = kernel_size * width
        qkv = z[:, taps:] + qkv_in  # (B, 3F, T)
        q, k, v = qkv[:, :width], qkv[:, width : 2 * width], qkv[:, 2 * width :]
        geometry = (kernel_size, dilation, scale)
        weights, out = attend(q, k, v, key_mask, geometry, None, kernels, diffact_outside)
        out += conv_bias[:, None]  # out (B, F, T)
        if kernels and native.applies(kernel_size, out, z):
            native.window_taps_(out, z[:, :taps], kernel_size, dilation)
        else:
            for j, o, lo, hi in shifts(z.shape[2], kernel_size, dilation):
                out[:, :, lo:hi] += z[:, j * width : (j + 1) * width, lo + o : hi + o]
        ctx.save_for_backward(qkv, weights, key_mask)
        ctx.geometry = (width, *geometry)
        ctx.qkv_in_shape, ctx.kernels = qkv_in.shape, kernels
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
        attend_backward(grad_out, saved, tuple(geometry), grads, ctx.kernels)
        grad_conv_bias = grad_out.sum(dim=(0, 2)) if ctx.needs_input_grad[1] else None
        grad_qkv_in = None
        if ctx.needs_input_grad[2]:
            grad_qkv_in = grad_qkv
            if ctx.qkv_in_shape != grad_qkv.shape:  # the bias, broadcast over rows and frames
                grad_qkv_in = grad_qkv.sum(dim=(0, 2)).reshape(ctx.qkv_in_shape)
        return grad_z, grad_conv_bias, grad_qkv_in, None, None, None, None


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


# --- instance norm ---------------------------------------------------------------


def instance_norm(x: torch.Tensor, fmask: FrameMask) -> torch.Tensor:
    """:func:`.reference.instance_norm` with a closed-form backward (:class:`_InstanceNorm`);
    without padding one group-norm kernel (one channel per group). Other dtypes than
    float32/64 are normalised in float32 and cast back."""
    compute = x if x.dtype in (torch.float32, torch.float64) else x.float()
    weight = None if fmask.full else fmask.weight.to(compute.dtype)
    count = fmask.count.to(compute.dtype)
    if wants_grad(compute):
        return _InstanceNorm.apply(compute, weight, count).to(x.dtype)
    return _normalise(compute, weight, count)[0].to(x.dtype)  # no Function call to pay for


def _normalise(
    x: torch.Tensor, weight: Optional[torch.Tensor], count: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The instance norm's forward: y (B, C, T) and the reciprocal deviation (B, C, 1), for
    x (B, C, T), weight (B, 1, T) 0/1 or None (no padding), count (B, 1, 1) real frames."""
    batch, channels, frames = x.shape
    if weight is None:  # group norm, one channel per group: one fused kernel
        y, _, rstd = torch.native_group_norm(
            x, None, None, batch, channels, frames, channels, NORM_EPS
        )  # (B, C, T), _, (B, C)
        return y, rstd[:, :, None]
    mean = (x * weight).sum(dim=2, keepdim=True) / count  # (B, C, 1)
    centred = (x - mean).mul_(weight)  # (B, C, T), 0 on padding
    var = centred.square().sum(dim=2, keepdim=True) / count  # (B, C, 1)
    rstd = torch.rsqrt(var + NORM_EPS)  # (B, C, 1)
    return centred.mul_(rstd), rstd


class _InstanceNorm(torch.autograd.Function):
    """:func:`instance_norm` (float32/64), with the closed-form backward
    ``dx = r * (dy - mean(dy) - y * mean(dy * y))`` (means over real frames, 0 on padding)."""

    @staticmethod
    def forward(ctx, x, weight, count):  # type: ignore[override]
        y, rstd = _normalise(x, weight, count)  # (B, C, T), (B, C, 1)
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


# --- dropout ---------------------------------------------------------------------


def dropout(x: torch.Tensor, p: float, kernels: bool = False) -> torch.Tensor:
    """Training dropout whose CPU mask costs one draw of the global torch RNG: a 64-bit seed,
    from which every element gets a 16-bit share by a counter-based hash
    (:func:`dropout_shares`). An element is kept when its share is below
    ``round((1 - p) * 2 ** 16)``: the keep probability is 1 - p to within 2 ** -17 (exact for
    p = 0.5); kept elements are scaled by ``1 / (1 - p)`` as in ``F.dropout``. Drawing
    ``bernoulli_`` (~10 ns per element) or even 64-bit ``random_`` (~1.4 ns per element) from
    the global generator cost more than the rest of a width-24 decoder block.

    With the native kernels the hash and the masking are one pass forward and one backward,
    and no mask is stored; otherwise the same shares come from tensor ops, so a seed gives the
    same masks either way. Other devices and dtypes use ``F.dropout``'s kernel.
    """
    if x.device.type != "cpu" or not x.is_floating_point():
        return F.dropout(x, p, training=True)
    if p == 1.0:
        return x * 0.0
    threshold = round((1.0 - p) * 2**16) - 2**15
    scale = 1.0 / (1.0 - p)
    if threshold >= 2**15:  # p < 2^-17: every share is kept (and 2^15 is no int16)
        return x * scale
    seed = int(torch.empty((), dtype=torch.int64).random_(-(2**63), None))
    if x.is_contiguous() and kernels and native.applies(1, x.detach()):
        return _NativeDropout.apply(x, seed, threshold, scale)
    shares = dropout_shares(seed, x.numel()).view(x.shape)
    return x * (shares < threshold).to(x.dtype).mul_(scale)  # 0 or 1 / (1 - p)


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


class _NativeDropout(torch.autograd.Function):
    """:func:`dropout`'s masking as one native pass; the backward is the same pass over
    the gradient (the seed is all that is kept)."""

    @staticmethod
    def forward(ctx, x, seed, threshold, scale):  # type: ignore[override]
        ctx.mask = (seed, threshold, scale)
        return native.dropout_apply(x, seed, threshold, scale)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return native.dropout_apply(grad.contiguous(), *ctx.mask), None, None, None


# --- the backends' registrations (:mod:`.registry`) -----------------------------------


def autograd_ok(*tensors: torch.Tensor) -> bool:
    """Whether the hand-written code takes these tensors: without autograd, or with one dtype
    and no autocast (else the reference differentiates them)."""
    return not wants_grad(*tensors) or differentiable(*tensors)


def _register(backend: Backend, kernels: bool) -> None:
    register(
        "dropout", backend,
        lambda x, p: dropout(x, p, kernels),
        lambda x, p: autograd_ok(x),
    )  # fmt: skip
    register(
        "instance_norm", backend,
        instance_norm,
        lambda x, fmask: autograd_ok(x),
    )  # fmt: skip
    register(
        "windowed_attention", backend,
        lambda q, k, v, key_mask, kernel_size, dilation, outside: windowed_attention(
            q, k, v, key_mask, kernel_size, dilation, outside, kernels),
        lambda q, k, v, key_mask, kernel_size, dilation, outside: autograd_ok(q, k, v),
    )  # fmt: skip
    register(
        "conv_attention", backend,
        lambda h, conv_w, conv_b, qkv_w, qkv_in, key_mask, geometry, outside: conv_attention(
            h, conv_w, conv_b, qkv_w, qkv_in, key_mask, geometry, outside, kernels),
        lambda h, conv_w, conv_b, qkv_w, qkv_in, key_mask, geometry, outside: autograd_ok(
            h, conv_w, qkv_w, qkv_in),
    )  # fmt: skip


_register(Backend.SHIFTED, kernels=False)
_register(Backend.NATIVE, kernels=True)  # the same code with the native kernels where they fit
