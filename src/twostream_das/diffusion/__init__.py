"""Diffusion over label sequences: schedule, forward process, DDIM steps, the sampling loop."""

from .ddim import DDIMSampler, NoiseSource, RecordedNoise, ddim_timesteps, per_video_noise
from .gaussian import GaussianDiffusion
from .sampling import Denoiser, SampleResult, concat_results, make_scheduler, sample, sample_passes
from .schedule import NoiseSchedule, cosine_schedule

__all__ = [
    "DDIMSampler",
    "Denoiser",
    "GaussianDiffusion",
    "NoiseSchedule",
    "NoiseSource",
    "RecordedNoise",
    "SampleResult",
    "concat_results",
    "cosine_schedule",
    "ddim_timesteps",
    "make_scheduler",
    "per_video_noise",
    "sample",
    "sample_passes",
]
