"""A :class:`~twostream_das.diffusion.samplers.NoiseSource` that replays recorded draws: the
parity tests feed DiffAct's own draws to this package's sampling loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch


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
