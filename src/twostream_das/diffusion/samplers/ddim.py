"""DDIM steps (Song et al. 2021) with x0 prediction: a :class:`~.base.Sampler`.

Timesteps (DiffAct's spacing, ``eval.timestep_spacing: linear``; :mod:`.timesteps`):
``floor(linspace(-1, N - 1, n + 1))`` reversed, paired with their successor: for N = 1000,
n = 25 the steps are 999, 959, ..., 39 and the last one goes to -1, where the update returns
the x0 estimate itself (abar_{-1} = 1). One update from t to t' < t:

    eps    = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)
    sigma  = eta * sqrt((1 - abar_t') / (1 - abar_t) * (1 - abar_t / abar_t'))
    x_t'   = sqrt(abar_t') x0 + sqrt(1 - abar_t' - sigma^2) eps + sigma z,   z ~ N(0, I)

Randomness: the noise of :mod:`.base` (one generator per row, or a noise source). No noise is
drawn when sigma = 0 (eta = 0, or the last step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from ...config import Config, TimestepSpacing
from ...sampling_math import DDIMStepCoefficients, ddim_coefficients
from ..schedule import NoiseSchedule
from .base import Generators, per_video_noise
from .timesteps import ddim_timesteps, timestep_grid

__all__ = ["DDIMSampler", "StepCoefficients", "ddim_timesteps"]


StepCoefficients = DDIMStepCoefficients
"""Scalars of one update from t to t_prev
(:func:`twostream_das.sampling_math.ddim_coefficients`)."""


class DDIMSampler:
    """DDIM over a :class:`NoiseSchedule` (see the module docstring); a
    :class:`~.base.Sampler`.

    Args:
        schedule: the training schedule (float64 abar).
        eta: stochasticity; 1.0 = DiffAct's default, 0.0 = deterministic DDIM.
        spacing: where the steps lie (:mod:`.timesteps`; linear = DiffAct's grid).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        eta: float = 1.0,
        spacing: TimestepSpacing = TimestepSpacing.LINEAR,
    ) -> None:
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.schedule = schedule
        self.eta = float(eta)
        self.spacing = TimestepSpacing(spacing)
        self.timesteps: list[int] = []
        self._coefficients: dict[int, StepCoefficients] = {}

    @classmethod
    def from_config(cls, schedule: NoiseSchedule, cfg: Config) -> DDIMSampler:
        """DDIM over ``schedule`` with ``model.diffusion.eta`` and ``eval.timestep_spacing``."""
        return cls(schedule, cfg.model.diffusion.eta, cfg.eval.timestep_spacing)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose the n steps (``self.timesteps``, descending) and precompute their updates."""
        grid = timestep_grid(self.schedule.num_train_timesteps, num_inference_steps, self.spacing)
        abar = self.schedule.alphas_cumprod.tolist()
        self.timesteps = grid[:-1]
        self._coefficients = {
            t: ddim_coefficients(abar[t], abar[t_prev] if t_prev >= 0 else 1.0, self.eta)
            for t, t_prev in zip(grid[:-1], grid[1:], strict=True)
        }

    def step(
        self,
        x0: torch.Tensor,
        t: int,
        x_t: torch.Tensor,
        generator: Optional[Generators] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> torch.Tensor:
        """One DDIM update from step ``t`` (an element of ``self.timesteps``) to the next.

        Args:
            x0: (B, C, T) x0 estimate at step t (in label space, [-s, s]).
            t: the current step.
            x_t: (B, C, T) current sample.
            generator: one generator or one per video; needed when eta > 0.
            lengths: real frames per video (with per-video generators).

        Returns:
            (B, C, T) the sample at the next step (x0 itself after the last step).
        """
        if t not in self._coefficients:
            raise ValueError(f"step {t} is not one of this sampler's timesteps (set_timesteps?)")
        c = self._coefficients[t]
        eps = (x_t - c.sqrt_abar * x0) / c.sqrt_one_minus_abar  # (B, C, T)
        x_prev = c.sqrt_abar_prev * x0 + c.direction * eps
        if c.sigma > 0:
            if generator is None:
                raise ValueError("a generator is needed for a stochastic DDIM step (eta > 0)")
            noise = per_video_noise(x_t.shape, generator, lengths, x_t.device, x_t.dtype)
            x_prev = x_prev + c.sigma * noise
        return x_prev
