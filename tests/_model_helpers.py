"""Small model configs and padded inputs shared by the model tests."""

from __future__ import annotations

import torch

from twostream_das.config import Config, load_config
from twostream_das.diffusion import Sampler, make_sampler

SMALL = [
    "model.encoder.num_blocks=3",
    "model.encoder.width=8",
    "model.encoder.cond_blocks=[1,2]",
    "model.decoder.num_blocks=3",
    "model.decoder.width=6",
    "model.decoder.time_emb_dim=16",
    "eval.steps=4",
    "dataset.streams={rgb: {folder: features_rgb}, flow: {folder: features_flow}}",
]


def small_config(*extra: str) -> Config:
    return load_config(None, [*SMALL, *extra])


def sampler(*extra: str) -> Sampler:
    """The sampler of ``small_config(*extra)``: DDIM, its 4 steps and eta (or the overrides')."""
    return make_sampler(small_config(*extra))


def lengths_mask(lengths: list[int], frames: int) -> torch.Tensor:
    """(B, T) bool, True on the first lengths[b] frames."""
    return torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]


def pad_batch(x: torch.Tensor, others: list[torch.Tensor], frames: int) -> torch.Tensor:
    """Stack (D, T_b) tensors ``[x, *others]`` zero-padded to ``frames``: (B, D, frames)."""
    items = [x, *others]
    out = torch.zeros(len(items), x.shape[0], frames, dtype=x.dtype)
    for b, item in enumerate(items):
        out[b, :, : item.shape[1]] = item
    return out
