"""Building blocks of the encoder and decoder: step embedding, window masks, the block, and the
ops it calls with their backends (the one switch for the fast paths: :mod:`.backends`).

    block.py      the conv-attention block (the model's one block), plain code over ops
    ops.py        the ops, one dispatch point each: dropout, conv + attention, attention, norm
    backends.py   Backend enum, use_backend(), TWOSTREAM_DAS_BACKEND
    reference.py  the reference backend: plain PyTorch (the spec)
    fast.py       the shifted and native backends (hand-written backwards, shifted multiply-adds)
    native.py     the native CPU kernels' loader (csrc/window_ops.cpp)
    windows.py    window geometry and padding masks
"""

from .backends import Backend, current_backend, use_backend
from .block import BlockWeights, ConvAttentionBlock, DilatedConv, PointwiseConv, block_forward
from .embeddings import TimestepEmbedding, sinusoidal_embedding
from .ops import instance_norm, windowed_attention
from .windows import FrameMask, frame_mask, window_key_mask, window_views

__all__ = [
    "Backend",
    "BlockWeights",
    "ConvAttentionBlock",
    "DilatedConv",
    "FrameMask",
    "PointwiseConv",
    "TimestepEmbedding",
    "block_forward",
    "current_backend",
    "frame_mask",
    "instance_norm",
    "sinusoidal_embedding",
    "use_backend",
    "window_key_mask",
    "window_views",
    "windowed_attention",
]
