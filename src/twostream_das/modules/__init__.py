"""Building blocks of the encoder and decoder: step embedding, windowed attention, block."""

from .attention import FrameMask, frame_mask, window_key_mask, window_views, windowed_attention
from .block import ConvAttentionBlock, DilatedConv, PointwiseConv, masked_instance_norm
from .embeddings import TimestepEmbedding, sinusoidal_embedding

__all__ = [
    "ConvAttentionBlock",
    "DilatedConv",
    "FrameMask",
    "PointwiseConv",
    "TimestepEmbedding",
    "frame_mask",
    "masked_instance_norm",
    "sinusoidal_embedding",
    "window_key_mask",
    "window_views",
    "windowed_attention",
]
