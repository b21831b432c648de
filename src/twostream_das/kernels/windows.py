"""The windows of the block's dilated conv and attention, and the padding masks.

Frame ``t`` of a block with kernel ``k`` and dilation ``d`` sees the ``k`` frames
``t + j * d`` for ``j`` in ``[-(k // 2), k // 2]``: the footprint of the block's dilated
convolution, and the keys of its windowed attention. Keys outside the sequence or on padded
frames are masked (:func:`window_key_mask`). Memory stays linear in T: there is no ``T x T``
tensor anywhere.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


def _exporting() -> bool:
    """Whether ``torch.export`` is tracing (``torch.compiler.is_exporting``, torch >= 2.5)."""
    check = getattr(getattr(torch, "compiler", None), "is_exporting", None)
    return bool(check()) if check is not None else False


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
    # An exported graph (ONNX) serves every batch, padded or not: it keeps the masking.
    full = False if _exporting() else bool(mask.all())
    return FrameMask(mask, weight, count, full)


def window_views(x: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    """The ``kernel_size`` dilated neighbours of every frame.

    Args:
        x: (B, C, T), taken as zero outside ``[0, T)``.

    Returns:
        (B, C, k, T) with ``out[:, :, j, t] = x[:, :, t + (j - k // 2) * dilation]`` (0 outside).
        Time stays the innermost (contiguous) axis, which keeps the elementwise work vectorised.
        A strided view of the zero-padded x (no copy): for code without autograd. Under
        autograd use :func:`window_stack`: the backward of a strided (``unfold``) view
        materialises a gradient of the window's full span, ``(B, C, T, 2 * reach + 1)``, which
        at dilation 512 is hundreds of MB and seconds per block.
    """
    reach = (kernel_size // 2) * dilation  # frames each side
    padded = F.pad(x, (reach, reach))  # (B, C, T + 2 * reach)
    frames = x.shape[2]
    batch, channels, _ = padded.shape
    sb, sc, st = padded.stride()
    return padded.as_strided(
        (batch, channels, kernel_size, frames), (sb, sc, dilation * st, st)
    )  # (B, C, k, T) view


def window_stack(x: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    """:func:`window_views`' values as a stack of k shifted slices of the zero-padded x (a
    copy, (B, C, k, T)), whose backward is k slices of the gradient: the same values with or
    without autograd, at linear memory."""
    reach = (kernel_size // 2) * dilation  # frames each side
    padded = F.pad(x, (reach, reach))  # (B, C, T + 2 * reach)
    frames = x.shape[2]
    shifted = [padded[:, :, j * dilation : j * dilation + frames] for j in range(kernel_size)]
    return torch.stack(shifted, dim=2)  # (B, C, k, T)


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


def window_key_mask(valid: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    """Which keys of every window exist: inside the sequence and on a real frame.

    Args:
        valid: (B, T) bool padding mask.

    Returns:
        (B, k, T) bool, True = frame t may attend to its j-th neighbour.
    """
    return window_views(valid[:, None, :], kernel_size, dilation)[:, 0].contiguous()  # (B, k, T)


