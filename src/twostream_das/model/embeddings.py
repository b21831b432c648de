"""Diffusion-step embedding: sinusoid -> MLP -> per-channel bias of the decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_PERIOD = 10_000.0
"""Longest wavelength of the sinusoidal embedding (DDPM / Transformer convention)."""


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of diffusion steps (DDPM's, as in DiffAct): ``[sin | cos]``.

    Frequencies ``MAX_PERIOD ** (-i / (half - 1))`` for ``i < half = dim // 2``; an odd ``dim``
    gets one zero column at the end.

    Args:
        t: (B,) integer or float diffusion steps.
        dim: embedding size E (>= 4).

    Returns:
        (B, E) float32.
    """
    if dim < 4:
        raise ValueError(f"time embedding dim {dim} is too small; expected >= 4")
    half = dim // 2
    exponent = torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1)  # (E/2,)
    freqs = torch.exp(-math.log(MAX_PERIOD) * exponent)  # (E/2,)
    angles = t.float()[:, None] * freqs[None, :]  # (B, E/2)
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (B, 2 * (E/2))
    return nn.functional.pad(emb, (0, dim % 2))  # (B, E)


class TimestepEmbedding(nn.Module):
    """Diffusion step -> per-channel bias: sinusoid(E) -> Linear(E, E) -> SiLU -> Linear(E, E)
    -> SiLU -> Linear(E, out_dim). (DiffAct's ``time_in`` MLP followed by its ``time_proj``.)"""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim),
            nn.SiLU(),
            nn.Linear(dim, dim),
            nn.SiLU(),
            nn.Linear(dim, out_dim),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Args: t (B,) diffusion steps. Returns: (B, out_dim) bias."""
        return self.mlp(sinusoidal_embedding(t, self.dim))
