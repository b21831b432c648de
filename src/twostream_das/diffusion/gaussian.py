"""The Gaussian diffusion process on label sequences (DiffAct's formulation).

Label space: a label sequence as one-hot (B, C, T), scaled to x0 in {-s, +s}:
``x0 = (2 * onehot - 1) * s`` (s = ``DiffusionConfig.signal_scale``). Forward process:
``x_n = sqrt(abar_n) x0 + sqrt(1 - abar_n) eps``, one n per sample.

What the network sees of x_n: ``clamp(x_n, -s, s)`` mapped linearly to [0, 1]
(:meth:`GaussianDiffusion.model_input`). What it returns: x0 logits; the x0 estimate is
``(2 * softmax(logits) - 1) * s`` (:meth:`GaussianDiffusion.logits_to_x0`), which lies in
[-s, s]. This object owns all of that, so the decoder stays blind to the schedule and to s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DiffusionConfig
from .schedule import NoiseSchedule, cosine_schedule


class GaussianDiffusion(nn.Module):
    """Forward process and label-space conversions.

    The schedule's per-step rates are float32 buffers (not saved in checkpoints: the config
    rebuilds them); ``schedule`` keeps the float64 originals on the CPU for the samplers.
    """

    def __init__(self, schedule: NoiseSchedule, signal_scale: float) -> None:
        super().__init__()
        if signal_scale <= 0:
            raise ValueError(f"signal_scale must be > 0, got {signal_scale}")
        self.schedule = schedule
        self.signal_scale = float(signal_scale)
        abar = schedule.alphas_cumprod
        self.register_buffer("sqrt_abar", abar.sqrt().float(), persistent=False)  # (N,)
        self.register_buffer(
            "sqrt_one_minus_abar", (1 - abar).sqrt().float(), persistent=False
        )  # (N,)

    @classmethod
    def from_config(cls, cfg: DiffusionConfig) -> GaussianDiffusion:
        return cls(cosine_schedule(cfg.num_train_timesteps, cfg.cosine_s), cfg.signal_scale)

    @property
    def num_train_timesteps(self) -> int:
        return self.schedule.num_train_timesteps

    def labels_to_x0(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Args: labels (B, T) long, negative (-100) on padding.
        Returns: (B, C, T) x0 in {-s, +s}; padded frames are -s in every class."""
        onehot = F.one_hot(labels.clamp(min=0), num_classes)  # (B, T, C)
        onehot = onehot * (labels >= 0)[:, :, None]  # padding -> all zero
        return (2.0 * onehot.transpose(1, 2).float() - 1.0) * self.signal_scale  # (B, C, T)

    def sample_timesteps(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """(B,) long steps drawn uniformly from [0, N), on the generator's device."""
        return torch.randint(
            0, self.num_train_timesteps, (batch_size,), generator=generator, device=generator.device
        )

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise.

        Args: x0 (B, C, T); t (B,) long; noise (B, C, T). Returns: (B, C, T).
        """
        signal = self.sqrt_abar[t][:, None, None]  # (B, 1, 1)
        spread = self.sqrt_one_minus_abar[t][:, None, None]  # (B, 1, 1)
        return signal * x0 + spread * noise

    def model_input(self, x_t: torch.Tensor) -> torch.Tensor:
        """What the decoder sees of x_t: clamp to [-s, s], map to [0, 1]. (B, C, T) -> same."""
        s = self.signal_scale
        return (x_t.clamp(-s, s) / s + 1.0) / 2.0

    def logits_to_x0(self, logits: torch.Tensor) -> torch.Tensor:
        """x0 estimate in [-s, s] from the decoder's logits (softmax over classes, dim 1)."""
        return self.probs_to_x0(torch.softmax(logits, dim=1))

    def probs_to_x0(self, probs: torch.Tensor) -> torch.Tensor:
        """x0 estimate in [-s, s] from x0 class probabilities (B, C, T) in [0, 1]."""
        return (2.0 * probs - 1.0) * self.signal_scale
