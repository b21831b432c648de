"""The samplers of the reverse process, each a :class:`~.base.Sampler`, and the one factory.

A sampler is one file here plus one line in :data:`SAMPLERS` (its name, the value
``eval.sampler`` takes, and its ``from_config(schedule, cfg)``); docs/ARCHITECTURE.md has the
recipe. :func:`make_sampler` is the one place that reads the config's sampling keys
(``eval.sampler``, ``eval.steps``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from ...config import Config
from ...errors import ConfigError
from ..schedule import NoiseSchedule, cosine_schedule
from .base import Generators, NoiseSource, Sampler, per_video_noise
from .ddim import DDIMSampler, ddim_timesteps
from .dpmpp import DPMSolverPPSampler, DPMStepCoefficients, dpmpp_coefficients
from .timesteps import quadratic_timesteps, timestep_grid

SAMPLERS: dict[str, Callable[[NoiseSchedule, Config], Sampler]] = {
    "ddim": DDIMSampler.from_config,
    "dpmpp_2m": DPMSolverPPSampler.from_config,
    "dpmpp_2m_sde": DPMSolverPPSampler.sde_from_config,
}
"""``eval.sampler`` name -> the sampler's ``from_config(schedule, cfg)``."""


def make_sampler(cfg: Config, schedule: Optional[NoiseSchedule] = None) -> Sampler:
    """The sampler ``eval.sampler`` names, its steps set to ``eval.steps`` (diffusers'
    ``set_timesteps``), over ``schedule`` (default: the one ``model.diffusion`` describes, as
    the model's :class:`~twostream_das.diffusion.gaussian.GaussianDiffusion` builds it).
    Built per call, microseconds: the number of steps is a sampling choice, not part of the
    model.

    Raises:
        ConfigError: ``eval.sampler`` is not a registered sampler, or ``eval.steps`` is out of
        range for the schedule.
    """
    name = cfg.eval.sampler
    if name not in SAMPLERS:
        raise ConfigError(
            f"eval.sampler = {name!r} is not a sampler; expected one of {', '.join(SAMPLERS)}"
        )
    diffusion = cfg.model.diffusion
    schedule = schedule or cosine_schedule(diffusion.num_train_timesteps, diffusion.cosine_s)
    sampler = SAMPLERS[name](schedule, cfg)
    try:
        sampler.set_timesteps(cfg.eval.steps)
    except ValueError as err:
        raise ConfigError(f"eval.steps = {cfg.eval.steps}: {err}") from None
    return sampler


__all__ = [
    "SAMPLERS",
    "DDIMSampler",
    "DPMSolverPPSampler",
    "DPMStepCoefficients",
    "Generators",
    "NoiseSource",
    "Sampler",
    "ddim_timesteps",
    "dpmpp_coefficients",
    "make_sampler",
    "per_video_noise",
    "quadratic_timesteps",
    "timestep_grid",
]
