"""The sampler contract (diffusers' scheduler shape) and the noise every sampler draws.

A sampler owns the steps of the reverse process and their updates; the loop that runs one
(:func:`twostream_das.diffusion.sampling.sample`) and the network it calls know nothing else
about it::

    sampler = make_sampler(cfg)            # the registry's choice (eval.sampler), eval.steps set
    x = per_video_noise(shape, generators, lengths, device)    # x_T
    for t in sampler.timesteps:
        x0 = <denoiser>(x, t)
        x = sampler.step(x0, t, x, generators, lengths)

Randomness: ``generator`` is one ``torch.Generator`` (noise of the full shape) or one per video;
with one per video, video b draws exactly ``C x lengths[b]`` values from its own generator, so its
trajectory does not depend on the other videos of the batch or on the padded length.
It may also be a :class:`NoiseSource`: anything that hands out the next draw (the parity tests
replay the draws DiffAct's own sampler made).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Protocol, Union, runtime_checkable

import torch


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


Generators = Union[torch.Generator, Sequence[torch.Generator], NoiseSource]


class Sampler(Protocol):
    """What the sampling loop needs of a sampler (diffusers' scheduler contract), x0-parametrised.

    Attributes:
        timesteps: the steps of the reverse process, descending; set by :meth:`set_timesteps`.
    """

    timesteps: Sequence[int]

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose the n steps (``timesteps``) and prepare their updates.

        Raises:
            ValueError: ``num_inference_steps`` outside 1 .. the schedule's N.
        """
        ...

    def step(
        self,
        x0: torch.Tensor,
        t: int,
        x_t: torch.Tensor,
        generator: Optional[Generators] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> torch.Tensor:
        """One update from step ``t`` (an element of ``timesteps``) to the next.

        Args:
            x0: (N, C, T) the x0 estimate at step t (label space, [-s, s]).
            t: the current step.
            x_t: (N, C, T) the current sample.
            generator: the noise of a stochastic update (see the module docstring).
            lengths: real frames per row (with one generator per row).

        Returns:
            (N, C, T) the sample at the next step (the x0 estimate after the last step).
        """
        ...


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
