"""Where the sampling steps lie (``diffusion/samplers/timesteps.py``, ``eval.timestep_spacing``)."""

from __future__ import annotations

import pytest

from twostream_das.config import TimestepSpacing, load_config
from twostream_das.diffusion import (
    DDIMSampler,
    DPMSolverPPSampler,
    ddim_timesteps,
    make_sampler,
    quadratic_timesteps,
    timestep_grid,
)


def test_quadratic_steps_are_hand_worked():
    # t_k = floor((k / n)^2 * 999 + 1/2): n = 2: 249.75 -> 250; n = 4: 561.94, 249.75, 62.44
    assert quadratic_timesteps(1000, 2) == [999, 250, -1]
    assert quadratic_timesteps(1000, 4) == [999, 562, 250, 62, -1]
    assert quadratic_timesteps(1000, 1) == [999, -1]
    # n = 25: (1/25)^2 * 999 = 1.6 -> 2, (2/25)^2 * 999 = 6.4 -> 6, 14.4 -> 14, 25.6 -> 26
    assert quadratic_timesteps(1000, 25)[-5:] == [26, 14, 6, 2, -1]
    # too close to round apart: each moved to one above the next lower (3 of 4: 0.33, 1.33, 3)
    assert quadratic_timesteps(4, 3) == [3, 1, 0, -1]
    assert quadratic_timesteps(7, 7) == [6, 5, 4, 3, 2, 1, 0, -1]
    grid = quadratic_timesteps(1000, 1000)
    assert grid == list(range(999, -2, -1))
    with pytest.raises(ValueError, match="num_inference_steps = 0 is invalid"):
        quadratic_timesteps(1000, 0)


def test_linear_is_diffacts_grid():
    for n in (1, 2, 4, 25, 1000):
        assert timestep_grid(1000, n) == ddim_timesteps(1000, n)
        assert timestep_grid(1000, n, TimestepSpacing.LINEAR) == ddim_timesteps(1000, n)
        assert timestep_grid(1000, n, TimestepSpacing.QUADRATIC) == quadratic_timesteps(1000, n)


@pytest.mark.parametrize("name", ["ddim", "dpmpp_2m", "dpmpp_2m_sde"])
def test_every_sampler_takes_the_spacing_from_the_config(name):
    base = ["dataset.streams={a: {folder: a}}", f"eval.sampler={name}", "eval.steps=4"]
    assert make_sampler(load_config(None, base)).timesteps == [999, 749, 499, 249]
    quadratic = make_sampler(load_config(None, [*base, "eval.timestep_spacing=quadratic"]))
    assert isinstance(quadratic, (DDIMSampler, DPMSolverPPSampler))
    assert quadratic.timesteps == [999, 562, 250, 62]
