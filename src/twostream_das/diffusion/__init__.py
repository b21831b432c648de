"""Diffusion over label sequences: schedule, forward process, DDIM sampler."""

from .ddim import DDIMSampler, ddim_timesteps, per_video_noise
from .gaussian import GaussianDiffusion
from .schedule import NoiseSchedule, cosine_schedule

__all__ = [
    "DDIMSampler",
    "GaussianDiffusion",
    "NoiseSchedule",
    "cosine_schedule",
    "ddim_timesteps",
    "per_video_noise",
]
