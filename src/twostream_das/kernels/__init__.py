"""The ops the model's block calls, their backends (the one switch for the fast paths:
:mod:`.backends`) and the window geometry they share.

    ops.py        the ops, one dispatch point each: dropout, conv + attention, attention, norm
    backends.py   Backend enum, use_backend(), TWOSTREAM_DAS_BACKEND
    reference.py  the reference backend: plain PyTorch (the spec)
    fast.py       the shifted and native backends (hand-written backwards, shifted multiply-adds)
    native.py     the native CPU kernels' loader (csrc/window_ops.cpp)
    windows.py    window geometry and padding masks
"""

from .backends import Backend, current_backend, use_backend
from .ops import instance_norm, windowed_attention
from .windows import FrameMask, frame_mask, window_key_mask, window_views

__all__ = [
    "Backend",
    "FrameMask",
    "current_backend",
    "frame_mask",
    "instance_norm",
    "use_backend",
    "window_key_mask",
    "window_views",
    "windowed_attention",
]
