"""Frame condition masks ("importance sampling" in the paper), training only.

Before the conditioning features enter the decoder, every training sample gets one strategy,
drawn from ``MaskConfig.strategies`` ("random selection"; a single strategy = the paper's
ablation) with the probabilities ``MaskConfig.strategy_weights`` (uniform by default, as the
paper), and its features are multiplied by the resulting (B, T) mask:

- full: every real frame kept;
- zero: nothing kept (implemented; excluded from the default set, as in the paper);
- boundary: frames whose soft boundary score is >= ``boundary_threshold`` are zeroed;
- random_action: ``num_masked_actions`` classes are drawn uniformly *with replacement* among the
  classes present in that sample's real frames, as DiffAct draws them (so two draws can hide one
  class), and every frame of the drawn classes is zeroed.

Padded frames are 0 in every mask. All draws come from the given ``torch.Generator``, with
shapes that depend only on B and k: one uniform per sample for its strategy and, when
random_action is in the set, k uniforms per sample for its classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from ..config import MaskConfig, MaskStrategy


def draw_strategies(
    weights: Sequence[float], batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """(B,) long ids into the strategy list, id ``i`` with probability ``weights[i] / sum``, on
    the generator's device (one uniform per sample, inverted through the cumulative weights)."""
    w = torch.as_tensor(list(weights), dtype=torch.float64)
    if w.ndim != 1 or w.numel() == 0 or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"strategy weights {list(weights)} are invalid; expected >= 0, not all 0")
    edges = (torch.cumsum(w, 0) / w.sum()).to(generator.device)  # (S,), last == 1
    u = torch.rand(batch_size, generator=generator, device=generator.device, dtype=torch.float64)
    return torch.searchsorted(edges, u, right=True).clamp(max=w.numel() - 1)


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
    """Hide every frame of ``num_actions`` classes drawn with replacement among those present.

    Args:
        labels: (B, T) long, negative on padding.
        mask: (B, T) bool.
        num_actions: k, draws per sample (with replacement, as DiffAct's ``np.random.choice``
            per draw; a class drawn twice is hidden once).
        num_classes: C (> every label).
        generator: draws k uniforms per sample; draw u picks the ``floor(u * n)``-th of the
            sample's n present classes (in id order).

    Returns:
        (B, T) bool, False on the hidden classes' frames and on padding.
    """
    batch = labels.shape[0]
    real = mask & (labels >= 0)  # (B, T)
    safe = torch.where(real, labels, torch.full_like(labels, num_classes))  # padding -> dummy C
    present = torch.zeros(batch, num_classes + 1, dtype=torch.bool, device=labels.device)
    present.scatter_(1, safe, True)
    present = present[:, :num_classes]  # (B, C)
    count = present.sum(dim=1, keepdim=True)  # (B, 1) present classes n
    u = torch.rand(batch, num_actions, generator=generator, device=generator.device)
    pick = (u.to(labels.device) * count).long().clamp(max=(count - 1).clamp(min=0))  # (B, k)
    rank = torch.cumsum(present.long(), dim=1) - 1  # (B, C): position among present classes
    chosen = present[:, None, :] & (rank[:, None, :] == pick[:, :, None])  # (B, k, C)
    hidden = chosen.any(dim=1)  # (B, C)
    hidden = torch.cat([hidden, hidden.new_zeros(batch, 1)], dim=1)  # (B, C + 1)
    return real & ~hidden.gather(1, safe)  # (B, T)


def strategy_weights(strategies: Sequence[MaskStrategy], cfg: MaskConfig) -> list[float]:
    """The draw's relative weights: ``cfg.strategy_weights`` for ``cfg.strategies``, uniform
    otherwise (and when none are configured)."""
    if cfg.strategy_weights is None:
        return [1.0] * len(strategies)
    configured = [MaskStrategy(s).value for s in cfg.strategies]
    if configured != [MaskStrategy(s).value for s in strategies]:
        raise ValueError(
            f"model.masks.strategy_weights {list(cfg.strategy_weights)} are for the strategies "
            f"{configured}, not {[MaskStrategy(s).value for s in strategies]}"
        )
    return [float(w) for w in cfg.strategy_weights]


def sample_condition_mask(
    strategies: Sequence[MaskStrategy],
    labels: torch.Tensor,
    boundary: torch.Tensor,
    mask: torch.Tensor,
    cfg: MaskConfig,
    generator: torch.Generator,
    num_classes: Optional[int] = None,
) -> torch.Tensor:
    """One strategy per sample, drawn from ``strategies`` (weights: :func:`strategy_weights`);
    its frame mask.

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
    weights = strategy_weights(strategies, cfg)
    ids = draw_strategies(weights, labels.shape[0], generator).to(labels.device)  # (B,)
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
