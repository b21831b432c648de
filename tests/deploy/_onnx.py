"""Small checkpoints for the ONNX export and runtime tests, and the PyTorch path's draws."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from twostream_das.checkpoint import make_checkpoint, save_checkpoint
from twostream_das.config import load_config
from twostream_das.diffusion import per_video_noise
from twostream_das.model.multi_stream import MultiStreamModel
from twostream_das.runtime import make_generator

CLASSES = ["background", "cut", "pour", "stir", "take"]
SMALL = [  # three blocks each (dilations 1, 2, 4), 3 DDIM steps
    "model.encoder.num_blocks=3",
    "model.encoder.width=8",
    "model.encoder.cond_blocks=[1,2]",
    "model.decoder.num_blocks=3",
    "model.decoder.width=6",
    "model.decoder.time_emb_dim=16",
    "eval.steps=3",
]
DIMS = {"rgb": 7, "flow": 5, "pose": 3}


def write_checkpoint(
    path: Path, streams: Sequence[str] = ("rgb", "flow"), *extra: str, scale: float = 2.0,
    seed: int = 0,
) -> Path:
    """A random model of ``streams`` (weights times ``scale``, so attention is peaked as in a
    trained model) saved as a checkpoint; ``extra`` are config overrides."""
    spec = ", ".join(f"{s}: {{folder: features_{s}}}" for s in streams)
    cfg = load_config(None, [*SMALL, f"dataset.streams={{{spec}}}", *extra])
    dims = {s: DIMS[s] for s in streams}
    torch.manual_seed(seed)
    model = MultiStreamModel.from_config(cfg, dims, len(CLASSES))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
        if model.standardizer is not None:
            for s in streams:
                mean, std = model.standardizer.stats(s)
                mean.copy_(torch.linspace(-1, 1, dims[s]))
                std.copy_(torch.linspace(0.5, 2, dims[s]))
    return save_checkpoint(path, make_checkpoint(model, cfg, CLASSES, dims, epoch=3))


def torch_draws(
    seeds: Sequence[int], shape: Sequence[int], lengths: Sequence[int], count: int
) -> list[np.ndarray]:
    """The ``count`` draws (x_T, then one per stochastic step) that rows seeded with ``seeds``
    make in the PyTorch sampler (:func:`twostream_das.diffusion.per_video_noise`)."""
    gens = [make_generator(s) for s in seeds]
    return [
        per_video_noise(shape, gens, lengths, torch.device("cpu")).numpy() for _ in range(count)
    ]
