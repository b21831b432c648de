"""The samplers' arithmetic that needs no tensors, in plain Python (``math`` only): the
timestep grids (``linear``, ``quadratic``) and the per-step weights of DDIM and of
DPM-Solver++(2M) and its SDE variant.

One home for both callers: the package's samplers
(:mod:`twostream_das.diffusion.samplers.timesteps`, :mod:`~twostream_das.diffusion.samplers.dpmpp`,
which re-export these and document the math) and the host of an exported model
(:mod:`twostream_das.deploy.host`, which runs where torch is not installed). Nothing here imports
torch, numpy or the config.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "SPACINGS",
    "DDIMStepCoefficients",
    "DPMStepCoefficients",
    "RunHistory",
    "ddim_coefficients",
    "dpmpp_coefficients",
    "half_log_snr",
    "linear_timesteps",
    "quadratic_timesteps",
    "timestep_grid",
]

SPACINGS = ("linear", "quadratic")
"""The values of ``eval.timestep_spacing`` (:class:`twostream_das.config.TimestepSpacing`)."""


def _check_steps(num_train_timesteps: int, num_inference_steps: int) -> None:
    if not 0 < num_inference_steps <= num_train_timesteps:
        raise ValueError(
            f"num_inference_steps = {num_inference_steps} is invalid; expected 1 .. "
            f"{num_train_timesteps}"
        )


def _linspace(start: float, end: float, steps: int) -> list[float]:
    """``torch.linspace(start, end, steps, dtype=float64)`` value for value: the first half
    filled forwards from ``start``, the second half backwards from ``end``."""
    if steps == 1:
        return [float(start)]
    step = (end - start) / (steps - 1)
    half = steps // 2
    return [start + step * i if i < half else end - step * (steps - i - 1) for i in range(steps)]


def linear_timesteps(num_train_timesteps: int, num_inference_steps: int) -> list[int]:
    """The ``linear`` steps (DiffAct's): ``floor(linspace(-1, N - 1, n + 1))`` reversed, the
    n steps descending followed by -1, with DiffAct's float64 ``torch.linspace`` values.

    Returns:
        n + 1 ints, e.g. ``[999, 749, 499, 249, -1]`` for (1000, 4).

    Raises:
        ValueError: ``num_inference_steps`` outside 1 .. ``num_train_timesteps``.
    """
    _check_steps(num_train_timesteps, num_inference_steps)
    grid = _linspace(-1.0, num_train_timesteps - 1.0, num_inference_steps + 1)
    return [int(math.floor(v)) for v in reversed(grid)]


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
    _check_steps(num_train_timesteps, num_inference_steps)
    n, top = num_inference_steps, num_train_timesteps - 1
    ascending = [-1]
    for k in range(1, n + 1):
        ascending.append(max(math.floor((k / n) ** 2 * top + 0.5), ascending[-1] + 1))
    return ascending[::-1]


def timestep_grid(
    num_train_timesteps: int, num_inference_steps: int, spacing: str = "linear"
) -> list[int]:
    """The n steps of ``spacing`` (:data:`SPACINGS`), descending, followed by -1.

    Raises:
        ValueError: an unknown spacing, or ``num_inference_steps`` outside 1 .. N.
    """
    if spacing == "quadratic":
        return quadratic_timesteps(num_train_timesteps, num_inference_steps)
    if spacing != "linear":
        raise ValueError(f"timestep spacing {spacing!r} is unknown; expected one of {SPACINGS}")
    return linear_timesteps(num_train_timesteps, num_inference_steps)


class DDIMStepCoefficients(NamedTuple):
    """The scalars of one DDIM update from t to t' (float64 Python floats; the math:
    :mod:`twostream_das.diffusion.samplers.ddim`)."""

    sqrt_abar: float  # sqrt(abar_t)
    sqrt_one_minus_abar: float  # sqrt(1 - abar_t)
    sqrt_abar_prev: float  # sqrt(abar_t')
    direction: float  # sqrt(1 - abar_t' - sigma^2), weight of the predicted noise
    sigma: float  # weight of fresh noise


def ddim_coefficients(abar: float, abar_prev: float, eta: float) -> DDIMStepCoefficients:
    """The scalars of the DDIM update from abar_t = ``abar`` to abar_t' = ``abar_prev`` (1.0
    after the last step) with stochasticity ``eta``."""
    variance = (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
    sigma = eta * math.sqrt(max(variance, 0.0))
    direction = math.sqrt(max(1 - abar_prev - sigma**2, 0.0))
    return DDIMStepCoefficients(
        math.sqrt(abar), math.sqrt(1 - abar), math.sqrt(abar_prev), direction, sigma
    )


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


class _Pending(NamedTuple):
    """What the next step of one run needs: its index and this step's x0 estimate."""

    sample: weakref.ref  # the x_prev this step returned (the next step's x_t)
    index: int
    x0: Any


class RunHistory(dict):
    """The previous step's x0 estimate of every run of a multistep sampler (DPM-Solver++),
    keyed by the sample that step returned (``id`` -> its run's history, the sample held
    weakly): one sampler serves any number of runs, one after the other or interleaved, and a
    run's history is dropped with its sample. Any array type (torch or numpy) that takes weak
    references.

    Args:
        noun: what a sample is called in the error (``sample``, ``array``).
    """

    def __init__(self, noun: str = "sample") -> None:
        super().__init__()
        self.noun = noun

    def remember(self, x_prev: Any, index: int, x0: Any) -> None:
        """Step ``index`` returned ``x_prev`` from the estimate ``x0``."""
        key = id(x_prev)

        def forget(ref: weakref.ref, key: int = key) -> None:  # x_prev is gone: so is its run
            if key in self and self[key].sample is ref:
                del self[key]

        self[key] = _Pending(weakref.ref(x_prev, forget), index, x0)

    def previous_x0(self, x_t: Any, index: int, timesteps: Sequence[int]) -> Any:
        """The x0 estimate of the step that returned ``x_t`` (step ``index - 1`` of
        ``timesteps``).

        Raises:
            ValueError: ``x_t`` is not what step ``index - 1`` of a run returned.
        """
        pending = self.pop(id(x_t), None)
        if pending is None or pending.sample() is not x_t or pending.index != index - 1:
            raise ValueError(
                f"step {timesteps[index]} of DPM-Solver++ needs the x0 estimate of step "
                f"{timesteps[index - 1]} of the same run: give it the very {self.noun} that "
                "step returned"
            )
        return pending.x0
