"""DPM-Solver++(2M) with x0 prediction (Lu et al. 2022, Algorithm 2), and its SDE variant
(diffusers' ``sde-dpmsolver++``): two :class:`~.base.Sampler` s in one file, since they share
their timesteps, their history and all but three of their coefficients.

Notation: alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), lambda_t = log(alpha_t / sigma_t)
(the half log-SNR, increasing towards the data). Timesteps: DDIM's grid
(:mod:`.timesteps`, ``eval.timestep_spacing``; linear: 999, 749, 499, 249 and then -1 for 4 of
1000), so that both samplers evaluate the network at the same steps and a comparison at n steps
compares the updates only. One update from s = t_i to t = t_{i+1} with h = lambda_t - lambda_s,
the x0 estimates m_i (this step's) and m_{i-1} (the previous step's) and r = h_{i-1} / h:

    D      = (1 + 1 / (2r)) m_i - 1 / (2r) m_{i-1}     second order (multistep)
    D      = m_i                                         first order: the first step, the last
    ODE:  x_t = sigma_t / sigma_s * x_s + alpha_t (1 - e^-h) D
    SDE:  x_t = sigma_t / sigma_s * e^-h * x_s + alpha_t (1 - e^-2h) D
                + sigma_t sqrt(1 - e^-2h) z,   z ~ N(0, I)

The last step goes to t = -1 (abar = 1, sigma = 0, h = infinite): it is first order, as
diffusers' ``lower_order_final`` makes it (the second-order correction has no finite ratio r
there), and returns the x0 estimate itself, as DDIM's last step does. On this grid every run
ends so, whatever the number of steps. First order, the ODE update is DDIM's with eta = 0 and
the SDE update DDIM's with eta = 1 (DiffAct's default): the same mean and noise scale.

:func:`dpmpp_coefficients` gives the four weights of step i as plain Python floats; it lives in
:mod:`twostream_das.sampling_math` (math only), which the host of an exported model
(:mod:`twostream_das.deploy.host`, no torch) imports too, so both apply the same arithmetic.

Randomness (SDE): one draw of the noise of :mod:`.base` per step but the last (one generator
per row: row b draws ``C x lengths[b]`` values from its own generator), so K samples differ and
a row's trajectory does not depend on its batch mates.

History: a step of second order needs the previous step's x0 estimate. The sampler keeps it
keyed by the sample it returned (the tensor object, held weakly), so that a step is given the
estimate of its own run: one sampler serves any number of runs, one after the other or
interleaved, and a run's history is dropped with its sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from ...config import Config, TimestepSpacing
from ...sampling_math import DPMStepCoefficients, RunHistory, dpmpp_coefficients
from ..schedule import NoiseSchedule
from .base import Generators, per_video_noise
from .timesteps import timestep_grid


class DPMSolverPPSampler:
    """DPM-Solver++(2M), ODE or SDE, over a :class:`NoiseSchedule` (see the module docstring);
    a :class:`~.base.Sampler`.

    Args:
        schedule: the training schedule (float64 abar).
        stochastic: the SDE variant (draws noise at every step but the last).
        spacing: where the steps lie (:mod:`.timesteps`; linear = DiffAct's grid).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        stochastic: bool = False,
        spacing: TimestepSpacing = TimestepSpacing.LINEAR,
    ) -> None:
        self.schedule = schedule
        self.stochastic = bool(stochastic)
        self.spacing = TimestepSpacing(spacing)
        self.timesteps: list[int] = []
        self._index: dict[int, int] = {}
        self._coefficients: list[DPMStepCoefficients] = []
        self._pending = RunHistory("sample")  # id(x_prev returned) -> its run's history

    @classmethod
    def from_config(cls, schedule: NoiseSchedule, cfg: Config) -> DPMSolverPPSampler:
        """``dpmpp_2m``: the deterministic solver on ``eval.timestep_spacing``."""
        return cls(schedule, stochastic=False, spacing=cfg.eval.timestep_spacing)

    @classmethod
    def sde_from_config(cls, schedule: NoiseSchedule, cfg: Config) -> DPMSolverPPSampler:
        """``dpmpp_2m_sde``: the stochastic variant on ``eval.timestep_spacing``."""
        return cls(schedule, stochastic=True, spacing=cfg.eval.timestep_spacing)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose the n steps (``self.timesteps`` descending, on DDIM's grid) and their
        weights; forgets every run's history."""
        grid = timestep_grid(self.schedule.num_train_timesteps, num_inference_steps, self.spacing)
        abar = self.schedule.alphas_cumprod.tolist()
        self.timesteps = grid[:-1]
        self._index = {t: i for i, t in enumerate(self.timesteps)}
        self._coefficients = [
            dpmpp_coefficients(abar, grid, i, self.stochastic) for i in range(len(self.timesteps))
        ]
        self._pending.clear()

    def coefficients(self, t: int) -> DPMStepCoefficients:
        """The weights of the update from step ``t`` (an element of ``self.timesteps``)."""
        if t not in self._index:
            raise ValueError(f"step {t} is not one of this sampler's timesteps (set_timesteps?)")
        return self._coefficients[self._index[t]]

    def step(
        self,
        x0: torch.Tensor,
        t: int,
        x_t: torch.Tensor,
        generator: Optional[Generators] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> torch.Tensor:
        """One update from step ``t`` to the next.

        Args:
            x0: (B, C, T) x0 estimate at step t (label space, [-s, s]); kept, not copied, for
                the next step of this run: do not modify it in place.
            t: the current step (an element of ``self.timesteps``).
            x_t: (B, C, T) the current sample: x_T at the first step, afterwards the tensor the
                previous step of the same run returned.
            generator: one generator or one per row; needed by the SDE variant.
            lengths: real frames per row (with one generator per row).

        Returns:
            (B, C, T) the sample at the next step (x0 itself after the last step).

        Raises:
            ValueError: ``t`` is not a timestep; a second-order step whose ``x_t`` is not what
                the previous step of a run returned; the SDE without a generator.
        """
        c = self.coefficients(t)
        index = self._index[t]
        x_prev = c.x0 * x0  # (B, C, T)
        if c.x_t:
            x_prev = x_prev + c.x_t * x_t
        if c.x0_prev:
            x_prev = x_prev + c.x0_prev * self._pending.previous_x0(x_t, index, self.timesteps)
        if c.noise:
            if generator is None:
                raise ValueError("a generator is needed for a stochastic step (dpmpp_2m_sde)")
            noise = per_video_noise(x_t.shape, generator, lengths, x_t.device, x_t.dtype)
            x_prev = x_prev + c.noise * noise
        if index + 1 < len(self.timesteps):
            self._pending.remember(x_prev, index, x0)
        return x_prev
