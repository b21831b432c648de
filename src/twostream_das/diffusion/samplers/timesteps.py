"""Where the sampling steps lie on the training schedule (``eval.timestep_spacing``).

Every sampler evaluates the network at n timesteps, descending, and its last update goes to -1
(abar = 1), where it returns the x0 estimate. With few steps the place of the last network call
matters most: the output is the decoder's x0 estimate from that step's x_t.

- ``linear`` (DiffAct's, the default): ``floor(linspace(-1, N - 1, n + 1))``, e.g. 999, 499 for
  2 of 1000 and 999, 749, 499, 249 for 4 (:func:`ddim_timesteps`).
- ``quadratic`` (DPM-Solver's "time-quadratic" skip): ``t_k = floor((k / n)^2 (N - 1) + 1/2)``
  for k = n .. 1, more steps at low noise: 999, 250 for 2 of 1000 and 999, 562, 250, 62 for 4.
  Where two steps would round to the same t (n above about sqrt(N)), each is moved up to one
  above the next lower, so the steps stay distinct (:func:`quadratic_timesteps`, plain Python in
  :mod:`twostream_das.sampling_math`, shared with the torch-free host of an exported model).
"""

from __future__ import annotations

from ...config import TimestepSpacing
from ...sampling_math import linear_timesteps
from ...sampling_math import quadratic_timesteps as quadratic_timesteps  # re-exported
from ...sampling_math import timestep_grid as grid_by_name


def ddim_timesteps(num_train_timesteps: int, num_inference_steps: int) -> list[int]:
    """The ``linear`` steps, descending, followed by -1 (DiffAct's ``linspace(-1, N-1, n+1)``;
    :func:`twostream_das.sampling_math.linear_timesteps`).

    Returns:
        n + 1 ints, e.g. ``[999, 959, ..., 39, -1]`` for (1000, 25).
    """
    return linear_timesteps(num_train_timesteps, num_inference_steps)


def timestep_grid(
    num_train_timesteps: int,
    num_inference_steps: int,
    spacing: TimestepSpacing = TimestepSpacing.LINEAR,
) -> list[int]:
    """The n steps of ``spacing``, descending, followed by -1 (the grid every sampler uses)."""
    return grid_by_name(num_train_timesteps, num_inference_steps, TimestepSpacing(spacing).value)
