"""Diffusion over label sequences: schedule, forward process, the samplers and their
factory, the sampling loop."""

from .gaussian import GaussianDiffusion
from .samplers import (
    SAMPLERS,
    DDIMSampler,
    DPMSolverPPSampler,
    DPMStepCoefficients,
    Generators,
    NoiseSource,
    Sampler,
    ddim_timesteps,
    dpmpp_coefficients,
    make_sampler,
    per_video_noise,
    quadratic_timesteps,
    timestep_grid,
)
from .sampling import (
    Denoiser,
    SampleResult,
    concat_results,
    sample,
    sample_in_passes,
    sample_passes,
)
from .schedule import NoiseSchedule, cosine_schedule

__all__ = [
    "SAMPLERS",
    "DDIMSampler",
    "DPMSolverPPSampler",
    "DPMStepCoefficients",
    "Denoiser",
    "GaussianDiffusion",
    "Generators",
    "NoiseSchedule",
    "NoiseSource",
    "SampleResult",
    "Sampler",
    "concat_results",
    "cosine_schedule",
    "ddim_timesteps",
    "dpmpp_coefficients",
    "make_sampler",
    "per_video_noise",
    "quadratic_timesteps",
    "sample",
    "sample_in_passes",
    "sample_passes",
    "timestep_grid",
]
