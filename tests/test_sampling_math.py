"""The samplers' tensor-free arithmetic (``sampling_math.py``), shared by the package's samplers
and the torch-free host of an exported model."""

from __future__ import annotations

import math

import pytest
import torch

from twostream_das.sampling_math import ddim_coefficients, linear_timesteps, timestep_grid


def diffacts_grid(total: int, steps: int) -> list[int]:
    """DiffAct's definition, as its code computes it."""
    grid = torch.linspace(-1, total - 1, steps + 1, dtype=torch.float64)
    return [int(v) for v in grid.floor().long().flip(0).tolist()]


def test_the_linear_grid_is_diffacts_torch_linspace_for_every_number_of_steps():
    for total in (1000, 999, 50, 7, 1):
        for steps in range(1, total + 1):
            assert linear_timesteps(total, steps) == diffacts_grid(total, steps), (total, steps)


def test_the_grids_are_hand_worked_and_check_their_arguments():
    # linspace(-1, 999, 5) = -1, 249, 499, 749, 999
    assert linear_timesteps(1000, 4) == [999, 749, 499, 249, -1]
    # linspace(-1, 999, 4) = -1, 332.33, 665.67, 999
    assert timestep_grid(1000, 3) == [999, 665, 332, -1]
    assert timestep_grid(1000, 2, "quadratic") == [999, 250, -1]
    for bad in (0, 1001):
        with pytest.raises(ValueError, match=f"num_inference_steps = {bad} is invalid"):
            linear_timesteps(1000, bad)
    with pytest.raises(ValueError, match="spacing 'cubic' is unknown"):
        timestep_grid(1000, 4, "cubic")


def test_ddim_coefficients_are_hand_worked():
    # abar 0.25 -> 0.64, eta 1: variance = 0.36 / 0.75 * (1 - 0.25 / 0.64) = 0.2925
    c = ddim_coefficients(0.25, 0.64, 1.0)
    assert (c.sqrt_abar, c.sqrt_one_minus_abar, c.sqrt_abar_prev) == (0.5, math.sqrt(0.75), 0.8)
    assert c.sigma == pytest.approx(math.sqrt(0.2925), abs=1e-15)
    assert c.direction == pytest.approx(math.sqrt(0.36 - 0.2925), abs=1e-15)
    # eta 0: deterministic, all of 1 - abar' on the predicted noise
    assert ddim_coefficients(0.25, 0.64, 0.0).direction == pytest.approx(0.6, abs=1e-15)
    # the last step (abar' = 1): x0 itself, no noise
    last = ddim_coefficients(0.9, 1.0, 1.0)
    assert (last.sqrt_abar_prev, last.direction, last.sigma) == (1.0, 0.0, 0.0)
