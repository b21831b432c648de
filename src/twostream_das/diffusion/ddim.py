"""DDIM steps (Song et al. 2021) with x0 prediction, in the diffusers style; the loop that runs
them is :func:`twostream_das.diffusion.sampling.sample`:

    sampler = DDIMSampler(schedule, eta)
    sampler.set_timesteps(25)
    x = sampler.initial_noise(shape, generators, lengths)
    for t in sampler.timesteps:
        x0 = <denoiser>(x, t)
        x = sampler.step(x0, t, x, generators, lengths)

Timesteps (DiffAct's spacing): ``floor(linspace(-1, N - 1, n + 1))`` reversed, paired with their
successor: for N = 1000, n = 25 the steps are 999, 959, ..., 39 and the last one goes to -1,
where the update returns the x0 estimate itself (abar_{-1} = 1). One update from t to t' < t:

    eps    = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)
    sigma  = eta * sqrt((1 - abar_t') / (1 - abar_t) * (1 - abar_t / abar_t'))
    x_t'   = sqrt(abar_t') x0 + sqrt(1 - abar_t' - sigma^2) eps + sigma z,   z ~ N(0, I)

Randomness: ``generator`` is one ``torch.Generator`` (noise of the full shape) or one per video;
with one per video, video b draws exactly ``C x lengths[b]`` values from its own generator, so its
trajectory does not depend on the other videos of the batch or on the padded length.
It may also be a :class:`NoiseSource`: anything that hands out the next draw, such as
:class:`RecordedNoise`, which replays the draws another sampler made (DiffAct's, in the
parity tests). No noise is drawn when sigma = 0 (eta = 0, or the last step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Optional, Protocol, Union, runtime_checkable

import torch

from .schedule import NoiseSchedule


@runtime_checkable
class NoiseSource(Protocol):
    """Hands out the sampler's standard normal draws, one call per draw, in order."""

    def draw(
        self,
        shape: Sequence[int],
        lengths: Optional[Sequence[int]],
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """The next draw, ``shape`` = (B, C, T), on ``device`` as ``dtype``."""
        ...


class RecordedNoise:
    """A :class:`NoiseSource` that replays recorded draws in order (x_T first, then one per
    stochastic step), each cast to the dtype and device the sampler asks for.

    Args:
        draws: (B, C, T) tensors.

    Raises (from :meth:`draw`):
        ValueError: more draws asked for than recorded, or a recorded shape differs.
    """

    def __init__(self, draws: Sequence[torch.Tensor]) -> None:
        self.draws = list(draws)
        self.used = 0

    def draw(
        self,
        shape: Sequence[int],
        lengths: Optional[Sequence[int]],
        device: torch.device,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        if self.used >= len(self.draws):
            raise ValueError(f"draw {self.used + 1} asked for; only {len(self.draws)} recorded")
        out = self.draws[self.used]
        if tuple(out.shape) != tuple(shape):
            raise ValueError(
                f"recorded draw {self.used + 1} has shape {tuple(out.shape)}; the sampler "
                f"asks for {tuple(shape)}"
            )
        self.used += 1
        return out.to(device=device, dtype=dtype)


Generators = Union[torch.Generator, Sequence[torch.Generator], NoiseSource]


def ddim_timesteps(num_train_timesteps: int, num_inference_steps: int) -> list[int]:
    """The n sampling steps, descending, followed by -1 (DiffAct's ``linspace(-1, N-1, n+1)``).

    Returns:
        n + 1 ints, e.g. ``[999, 959, ..., 39, -1]`` for (1000, 25).
    """
    if not 0 < num_inference_steps <= num_train_timesteps:
        raise ValueError(
            f"num_inference_steps = {num_inference_steps} is invalid; expected 1 .. "
            f"{num_train_timesteps}"
        )
    grid = torch.linspace(-1, num_train_timesteps - 1, num_inference_steps + 1, dtype=torch.float64)
    return [int(v) for v in grid.floor().long().flip(0).tolist()]


class StepCoefficients(NamedTuple):
    """Scalars of one update from t to t_prev (float64 Python floats)."""

    sqrt_abar: float  # sqrt(abar_t)
    sqrt_one_minus_abar: float  # sqrt(1 - abar_t)
    sqrt_abar_prev: float  # sqrt(abar_t')
    direction: float  # sqrt(1 - abar_t' - sigma^2), weight of the predicted noise
    sigma: float  # weight of fresh noise


def per_video_noise(
    shape: Sequence[int],
    generator: Generators,
    lengths: Optional[Sequence[int]],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of ``shape`` = (B, C, T).

    With one generator: ``torch.randn(shape)``. With one generator per video: video b gets
    ``randn(C, lengths[b])`` from ``generator[b]`` and zeros beyond (lengths default to T).
    With a :class:`NoiseSource`: its next draw.
    """
    if isinstance(generator, NoiseSource):
        return generator.draw(shape, lengths, device, dtype)
    if isinstance(generator, torch.Generator):
        return torch.randn(
            tuple(shape), generator=generator, device=generator.device, dtype=dtype
        ).to(device)
    batch, channels, frames = shape
    lengths = [frames] * batch if lengths is None else list(lengths)
    if len(generator) != batch or len(lengths) != batch:
        raise ValueError(
            f"need one generator and one length per video: batch {batch}, "
            f"{len(generator)} generators, {len(lengths)} lengths"
        )
    noise = torch.zeros(batch, channels, frames, device=device, dtype=dtype)  # (B, C, T)
    for b, (gen, length) in enumerate(zip(generator, lengths, strict=True)):
        draw = torch.randn(channels, int(length), generator=gen, device=gen.device, dtype=dtype)
        noise[b, :, : int(length)] = draw.to(device)  # (C, L_b)
    return noise


class DDIMSampler:
    """DDIM over a :class:`NoiseSchedule` (see the module docstring).

    Args:
        schedule: the training schedule (float64 abar).
        eta: stochasticity; 1.0 = DiffAct's default, 0.0 = deterministic DDIM.
    """

    def __init__(self, schedule: NoiseSchedule, eta: float = 1.0) -> None:
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.schedule = schedule
        self.eta = float(eta)
        self.timesteps: list[int] = []
        self._coefficients: dict[int, StepCoefficients] = {}

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose the n steps (``self.timesteps``, descending) and precompute their updates."""
        grid = ddim_timesteps(self.schedule.num_train_timesteps, num_inference_steps)
        abar = self.schedule.alphas_cumprod.tolist()
        self.timesteps = grid[:-1]
        self._coefficients = {
            t: self._coefficients_for(abar[t], abar[t_prev] if t_prev >= 0 else 1.0)
            for t, t_prev in zip(grid[:-1], grid[1:], strict=True)
        }

    def _coefficients_for(self, abar: float, abar_prev: float) -> StepCoefficients:
        variance = (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
        sigma = self.eta * math.sqrt(max(variance, 0.0))
        direction = math.sqrt(max(1 - abar_prev - sigma**2, 0.0))
        return StepCoefficients(
            math.sqrt(abar), math.sqrt(1 - abar), math.sqrt(abar_prev), direction, sigma
        )

    def initial_noise(
        self,
        shape: Sequence[int],
        generator: Generators,
        lengths: Optional[Sequence[int]] = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """x at the first step: pure noise (B, C, T) (zeros beyond each video's length)."""
        return per_video_noise(shape, generator, lengths, torch.device(device))

    def step(
        self,
        x0_pred: torch.Tensor,
        t: int,
        x_t: torch.Tensor,
        generator: Optional[Generators] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> torch.Tensor:
        """One DDIM update from step ``t`` (an element of ``self.timesteps``) to the next.

        Args:
            x0_pred: (B, C, T) x0 estimate at step t (in label space, [-s, s]).
            t: the current step.
            x_t: (B, C, T) current sample.
            generator: one generator or one per video; needed when eta > 0.
            lengths: real frames per video (with per-video generators).

        Returns:
            (B, C, T) the sample at the next step (x0_pred itself after the last step).
        """
        if t not in self._coefficients:
            raise ValueError(f"step {t} is not one of this sampler's timesteps (set_timesteps?)")
        c = self._coefficients[t]
        eps = (x_t - c.sqrt_abar * x0_pred) / c.sqrt_one_minus_abar  # (B, C, T)
        x_prev = c.sqrt_abar_prev * x0_pred + c.direction * eps
        if c.sigma > 0:
            if generator is None:
                raise ValueError("a generator is needed for a stochastic DDIM step (eta > 0)")
            noise = per_video_noise(x_t.shape, generator, lengths, x_t.device, x_t.dtype)
            x_prev = x_prev + c.sigma * noise
        return x_prev
