"""The block's ops, each with one dispatch point over the backends (:mod:`.registry`).

The model calls only these. Which implementation runs is the one dispatch of
:func:`.registry.implementation`: the backend :func:`.backends.current_backend` names if its
registration accepts the arguments, else the next of its fallback chain: :mod:`.reference`
(plain PyTorch, the spec) takes what the fast backends of :mod:`.fast` (``shifted`` /
``native``) do not implement: gradients through mixed dtypes or under autocast. Every backend
implements both handlings of the attention at the sequence ends (``diffact_outside``).

Shapes: states ``(B, C, T)``; ``key_mask`` ``(B, k, T)`` bool from
:func:`~.windows.window_key_mask`; ``fmask`` a :class:`~.windows.FrameMask`.
"""

from __future__ import annotations

import torch

from . import fast, reference  # noqa: F401  (their backends register their ops on import)
from .reference import linear
from .registry import implementation
from .windows import FrameMask

__all__ = ["conv_attention", "dropout", "instance_norm", "linear", "windowed_attention"]


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with rate ``p`` in training mode, the identity otherwise: x (any shape)."""
    if not training or p == 0.0:
        return x
    return implementation("dropout", x, p)(x, p)


def instance_norm(x: torch.Tensor, fmask: FrameMask) -> torch.Tensor:
    """Instance norm over the real frames of x (B, C, T) -> (B, C, T), 0 on padded frames
    (no affine, biased variance, eps 1e-5; statistics in float32 or float64)."""
    return implementation("instance_norm", x, fmask)(x, fmask)


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
    args = (q, k, v, key_mask, kernel_size, dilation, diffact_outside)
    return implementation("windowed_attention", *args)(*args)


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
    args = (h, conv_weight, conv_bias, qkv_weight, qkv_in, key_mask, geometry, diffact_outside)
    return implementation("conv_attention", *args)(*args)
