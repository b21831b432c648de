"""The block's ops, each with one dispatch point over the backends (:mod:`.backends`).

The model calls only these; which implementation runs is :func:`.backends.current_backend`:
:mod:`.reference` (plain PyTorch, the spec) or :mod:`.fast` (``shifted`` / ``native``). A fast
backend hands an op to the reference where it does not implement it: DiffAct's attention at
the sequence ends, and gradients through mixed dtypes or under autocast (:func:`_fast`).

Shapes: states ``(B, C, T)``; ``key_mask`` ``(B, k, T)`` bool from
:func:`~.windows.window_key_mask`; ``fmask`` a :class:`~.windows.FrameMask`.
"""

from __future__ import annotations

import torch

from . import fast, reference
from .backends import Backend, current_backend
from .reference import linear
from .windows import FrameMask

__all__ = ["conv_attention", "dropout", "instance_norm", "linear", "windowed_attention"]


def _fast(*tensors: torch.Tensor, diffact_outside: bool = False) -> bool:
    """Whether the fast backend runs this op (else the reference does)."""
    if current_backend() is Backend.REFERENCE or diffact_outside:
        return False
    return not fast.wants_grad(*tensors) or fast.differentiable(*tensors)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with rate ``p`` in training mode, the identity otherwise: x (any shape)."""
    if not training or p == 0.0:
        return x
    return fast.dropout(x, p) if _fast(x) else reference.dropout(x, p)


def instance_norm(x: torch.Tensor, fmask: FrameMask) -> torch.Tensor:
    """Instance norm over the real frames of x (B, C, T) -> (B, C, T), 0 on padded frames
    (no affine, biased variance, eps 1e-5; statistics in float32 or float64)."""
    return fast.instance_norm(x, fmask) if _fast(x) else reference.instance_norm(x, fmask)


def windowed_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor,
    kernel_size: int,
    dilation: int,
    diffact_outside: bool = False,
) -> torch.Tensor:
    """Scaled dot-product attention of every frame over its k-frame dilated window:
    q, k (B, C, T), v (B, Cv, T) -> (B, Cv, T) (see :func:`.reference.windowed_attention`)."""
    if _fast(q, k, v, diffact_outside=diffact_outside):
        return fast.windowed_attention(q, k, v, key_mask, kernel_size, dilation)
    return reference.windowed_attention(
        q, k, v, key_mask, kernel_size, dilation, diffact_outside
    )


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
    """A block's ``DilatedConv(h) + WindowedAttention(q, k, v)``, ``[q; k; v] = W_qkv h +
    qkv_in``: h (B, F, T) -> (B, F, T). Weights as :func:`.reference.conv_attention`; the fast
    backends also take per-row weights without autograd (the stacked streams)."""
    args = (h, conv_weight, conv_bias, qkv_weight, qkv_in, key_mask, geometry)
    if _fast(h, conv_weight, qkv_weight, qkv_in, diffact_outside=diffact_outside):
        return fast.conv_attention(*args)
    return reference.conv_attention(*args, diffact_outside)
