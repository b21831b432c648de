"""Noise schedules. A schedule is data: the cumulative signal rates abar_n, n = 0 .. N-1."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MAX_BETA = 0.999
"""Upper clip of the per-step betas (Nichol & Dhariwal 2021; avoids a singular last step)."""


@dataclass(frozen=True)
class NoiseSchedule:
    """Attributes:
    betas: (N,) float64 per-step noise rates.
    alphas_cumprod: (N,) float64 abar_n = prod_{i <= n} (1 - beta_i); x_n = sqrt(abar_n) x0 +
        sqrt(1 - abar_n) eps.
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    @property
    def num_train_timesteps(self) -> int:
        return int(self.betas.shape[0])


def cosine_schedule(num_train_timesteps: int, offset: float) -> NoiseSchedule:
    """Cosine schedule (Nichol & Dhariwal 2021), as DiffAct builds it.

    ``f(u) = cos((u + s) / (1 + s) * pi / 2) ** 2`` on ``u = n / N``; betas are
    ``1 - f(n + 1) / f(n)`` clipped to ``[0, MAX_BETA]``, and abar is recomputed from the clipped
    betas (so abar_{N-1} > 0). Computed in float64.

    Args:
        num_train_timesteps: N (1000 in the paper).
        offset: s (``DiffusionConfig.cosine_s``, 0.008).
    """
    if num_train_timesteps < 1:
        raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
    u = torch.linspace(0, 1, num_train_timesteps + 1, dtype=torch.float64)  # (N + 1,)
    f = torch.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2  # (N + 1,)
    betas = (1 - f[1:] / f[:-1]).clamp(0.0, MAX_BETA)  # (N,)
    return NoiseSchedule(betas, torch.cumprod(1 - betas, dim=0))
