"""Frame condition masks ("importance sampling" in the paper), training only.

Before the conditioning features enter the decoder, every training sample gets one strategy,
drawn uniformly from ``MaskConfig.strategies`` ("random selection"; a single strategy = the
paper's ablation), and its features are multiplied by the resulting (B, T) mask:

- full: every real frame kept;
- zero: nothing kept (implemented; excluded from the default set, as in the paper);
- boundary: frames whose soft boundary score is >= ``boundary_threshold`` are zeroed;
- random_action: every frame of ``num_masked_actions`` distinct classes, drawn uniformly among the
  classes present in that sample's real frames, is zeroed (all present classes if fewer).

Padded frames are 0 in every mask. All draws come from the given ``torch.Generator``, with
shapes that depend only on (B, C): the ids of the strategies (B,) and, when random_action is
in the set, one uniform score per (sample, class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from .config import MaskConfig, MaskStrategy


def draw_strategies(
    num_strategies: int, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """(B,) long ids into the strategy list, uniform, on the generator's device."""
    return torch.randint(
        0, num_strategies, (batch_size,), generator=generator, device=generator.device
    )


def boundary_mask(boundary: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """Args: boundary (B, T) soft boundary score; mask (B, T) bool.
    Returns: (B, T) bool, False on frames with score >= threshold and on padding."""
    return mask & (boundary < threshold)


def random_action_mask(
    labels: torch.Tensor,
    mask: torch.Tensor,
    num_actions: int,
    num_classes: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Hide every frame of ``num_actions`` random classes present in each sample.

    Args:
        labels: (B, T) long, negative on padding.
        mask: (B, T) bool.
        num_actions: classes to hide per sample (without replacement).
        num_classes: C (> every label).
        generator: draws one uniform score per (sample, class); the lowest present win.

    Returns:
        (B, T) bool, False on the hidden classes' frames and on padding.
    """
    batch = labels.shape[0]
    real = mask & (labels >= 0)  # (B, T)
    safe = torch.where(real, labels, torch.full_like(labels, num_classes))  # padding -> dummy C
    present = torch.zeros(batch, num_classes + 1, dtype=torch.bool, device=labels.device)
    present.scatter_(1, safe, True)
    present = present[:, :num_classes]  # (B, C)
    scores = torch.rand(batch, num_classes, generator=generator, device=generator.device)
    scores = scores.to(labels.device).masked_fill(~present, 2.0)  # absent classes never win
    picked = scores.topk(min(num_actions, num_classes), dim=1, largest=False).indices  # (B, k)
    hidden = torch.zeros_like(present).scatter_(1, picked, True) & present  # (B, C)
    hidden = torch.cat([hidden, hidden.new_zeros(batch, 1)], dim=1)  # (B, C + 1)
    return real & ~hidden.gather(1, safe)  # (B, T)


def sample_condition_mask(
    strategies: Sequence[MaskStrategy],
    labels: torch.Tensor,
    boundary: torch.Tensor,
    mask: torch.Tensor,
    cfg: MaskConfig,
    generator: torch.Generator,
    num_classes: Optional[int] = None,
) -> torch.Tensor:
    """One strategy per sample, drawn from ``strategies``; its frame mask.

    Args:
        strategies: the candidates (usually ``cfg.strategies``), at least one.
        labels: (B, T) long, -100 on padding.
        boundary: (B, T) float soft boundary target.
        mask: (B, T) bool, True = real frame.
        cfg: threshold and number of hidden actions.
        generator: source of every draw.
        num_classes: C; defaults to ``labels.max() + 1`` (a device sync).

    Returns:
        (B, T) float in {0, 1}: multiply the (B, D, T) conditioning by ``mask[:, None, :]``.
    """
    if not strategies:
        raise ValueError("at least one condition-mask strategy is needed")
    strategies = [MaskStrategy(s) for s in strategies]
    ids = draw_strategies(len(strategies), labels.shape[0], generator).to(labels.device)  # (B,)
    if num_classes is None:
        num_classes = int(labels.max().clamp(min=0)) + 1
    options = {
        MaskStrategy.FULL: lambda: mask,
        MaskStrategy.ZERO: lambda: torch.zeros_like(mask),
        MaskStrategy.BOUNDARY: lambda: boundary_mask(boundary, mask, cfg.boundary_threshold),
        MaskStrategy.RANDOM_ACTION: lambda: random_action_mask(
            labels, mask, cfg.num_masked_actions, num_classes, generator
        ),
    }
    built = {s: options[s]() for s in dict.fromkeys(strategies)}  # each (B, T) bool, once
    candidates = torch.stack([built[s] for s in strategies])  # (S, B, T)
    chosen = candidates[ids, torch.arange(labels.shape[0], device=labels.device)]  # (B, T)
    return chosen.float()
