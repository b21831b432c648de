"""The samplers' arithmetic that needs no tensors, in plain Python (``math`` only): the
``quadratic`` timestep grid and the per-step weights of DPM-Solver++(2M) and its SDE variant.

One home for both callers: the package's samplers
(:mod:`twostream_das.diffusion.samplers.timesteps`, :mod:`~twostream_das.diffusion.samplers.dpmpp`,
which re-export these and document the math) and the host of an exported model
(:mod:`twostream_das.deploy.host`, which runs where torch is not installed). Nothing here imports
torch, numpy or the config.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["DPMStepCoefficients", "dpmpp_coefficients", "half_log_snr", "quadratic_timesteps"]


def quadratic_timesteps(num_train_timesteps: int, num_inference_steps: int) -> list[int]:
    """The ``quadratic`` steps (DPM-Solver's "time-quadratic" skip), descending, followed by -1:
    ``t_k = floor((k / n)^2 (N - 1) + 1/2)`` for k = n .. 1, each moved up to one above the next
    lower where two would round to the same t (n above about sqrt(N)).

    Returns:
        n + 1 ints, e.g. ``[999, 250, -1]`` for (1000, 2), ``[999, 562, 250, 62, -1]`` for
        (1000, 4).

    Raises:
        ValueError: ``num_inference_steps`` outside 1 .. ``num_train_timesteps``.
    """
    n, top = num_inference_steps, num_train_timesteps - 1
    if not 0 < n <= num_train_timesteps:
        raise ValueError(
            f"num_inference_steps = {n} is invalid; expected 1 .. {num_train_timesteps}"
        )
    ascending = [-1]
    for k in range(1, n + 1):
        ascending.append(max(math.floor((k / n) ** 2 * top + 0.5), ascending[-1] + 1))
    return ascending[::-1]


class DPMStepCoefficients(NamedTuple):
    """The weights of one update, float64 Python floats:
    ``x_prev = x_t * x_t + x0 * m_i + x0_prev * m_{i-1} + noise * z``."""

    x_t: float  # weight of the current sample
    x0: float  # weight of this step's x0 estimate
    x0_prev: float  # weight of the previous step's x0 estimate (0 at first order)
    noise: float  # weight of fresh standard normal noise (0 for the ODE solver, at the last step)


def half_log_snr(abar: float) -> float:
    """lambda = log(alpha / sigma) = 0.5 log(abar / (1 - abar)); +inf at abar = 1."""
    return math.inf if abar >= 1.0 else 0.5 * math.log(abar / (1.0 - abar))


def dpmpp_coefficients(
    alphas_cumprod: Sequence[float], grid: Sequence[int], i: int, stochastic: bool = False
) -> DPMStepCoefficients:
    """The weights of step i of DPM-Solver++(2M) (the math:
    :mod:`twostream_das.diffusion.samplers.dpmpp`), from s = grid[i] to t = grid[i + 1].

    Args:
        alphas_cumprod: abar_n, n = 0 .. N-1 (the schedule's, as floats).
        grid: the n steps descending and then -1 (the sampler's timestep grid).
        i: the step, 0 .. n-1; 0 is first order (no previous estimate).
        stochastic: the SDE variant's weights (``sde-dpmsolver++``).

    Returns:
        :class:`DPMStepCoefficients`; ``(0, 1, 0, 0)`` at the last step (x_prev = x0).

    Raises:
        ValueError: ``i`` is not a step of ``grid``.
    """
    if not 0 <= i < len(grid) - 1:
        raise ValueError(f"step {i} is not one of the {len(grid) - 1} steps of {list(grid)}")

    def abar(n: int) -> float:
        return 1.0 if n < 0 else float(alphas_cumprod[n])

    s, t = grid[i], grid[i + 1]
    if abar(t) >= 1.0:  # the last step: sigma_t = 0, h = inf
        return DPMStepCoefficients(0.0, 1.0, 0.0, 0.0)
    alpha_t, sigma_t, sigma_s = math.sqrt(abar(t)), math.sqrt(1 - abar(t)), math.sqrt(1 - abar(s))
    lambda_t, lambda_s = half_log_snr(abar(t)), half_log_snr(abar(s))
    h = lambda_t - lambda_s
    if stochastic:
        keep = -math.expm1(-2.0 * h)  # 1 - e^-2h
        x_t = sigma_t / sigma_s * math.exp(-h)
        weight, noise = alpha_t * keep, sigma_t * math.sqrt(keep)
    else:
        x_t, weight, noise = sigma_t / sigma_s, alpha_t * -math.expm1(-h), 0.0
    if i == 0:
        return DPMStepCoefficients(x_t, weight, 0.0, noise)
    r = (lambda_s - half_log_snr(abar(grid[i - 1]))) / h  # h_{i-1} / h
    return DPMStepCoefficients(x_t, weight * (1 + 0.5 / r), -weight * 0.5 / r, noise)
