"""Per-stream losses (METHOD.md section 4), masked for padding, as a named breakdown.

Every term is first averaged over one video's real frames (or real neighbour pairs), then over
the videos of the batch: the research code trains with batch size 1 and averages over
accumulated videos, so a long video weighs as much as a short one. All terms are computed in
float32.

- Cross-entropy (encoder logits and decoder x0 logits): per frame ``-sum_c w_c q_c log p_c``
  with q the one-hot label or, when ``soft_label_sigma`` is set, the one-hot labels smoothed
  along time by a Gaussian (scipy ``gaussian_filter1d``, mode ``reflect`` at the video's own
  ends, so q still sums to 1 over classes). ``w`` are the class weights given by the caller
  (training passes :func:`class_weights_from_counts` over the training labels, and None = all 1
  when soft labels are on, as METHOD.md section 4 and DiffAct do, unless
  ``loss.soft_label_class_weighting``). With hard labels this is ``w_y * NLL``, the research
  code's per-frame ``CrossEntropyLoss(weight, reduction='none')`` then a plain mean over frames
  (not PyTorch's weight-normalised mean).
- Smoothing (MS-TCN's truncated MSE): for neighbour pairs (t, t+1) of real frames and every class,
  ``min((log p_{t+1}(c) - sg[log p_t(c)])^2, smooth_clamp)``, averaged; sg = stop-gradient on the
  earlier frame, exactly ``log_softmax(z[:, :, 1:]) - log_softmax(z.detach()[:, :, :-1])``.
- Boundary alignment (decoder only): for every pair (t, t+1), the change probability
  ``b_t = 1 - sum_c p_{t+1}(c) sg[p_t(c)]`` against the soft boundary target of the later frame,
  ``boundary[:, t + 1]`` (DiffAct's alignment); binary cross-entropy with log-probabilities
  clamped at ``LOG_CLAMP`` like ``nn.BCELoss``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import LossConfig

GAUSSIAN_TRUNCATE = 4.0
"""Kernel radius in sigmas, ``int(4 * sigma + 0.5)`` taps each side (scipy's default)."""

LOG_CLAMP = -100.0
"""Lower clamp of log-probabilities in the binary cross-entropy (``nn.BCELoss``'s)."""

TERMS: tuple[str, ...] = (
    "encoder_ce",
    "encoder_smooth",
    "decoder_ce",
    "decoder_smooth",
    "decoder_boundary",
)
"""Names of the loss terms; each is weighted by the ``LossConfig`` field of the same name."""


class StreamLoss(NamedTuple):
    """Attributes:
    total: 0-dim tensor, sum of weight * term (what is back-propagated).
    terms: term name -> unweighted value, detached 0-dim tensors (``float()`` them to log; no
        device sync happens here).
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


CLASS_COUNT_PRIOR = 10
"""Frames added to every class count in the class weights (DiffAct's ``+ 10``)."""


def class_weights_from_counts(counts: np.ndarray) -> np.ndarray:
    """METHOD.md section 4's class weights ``w_c = N / ((n_c + 10) * C)``, as DiffAct computes them.

    Args:
        counts: (C,) frames per class over the training labels (N = their sum).

    Returns:
        (C,) float64. A class absent from the training labels gets ``N / (10 C)``; it has no
        frames to weigh.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any():
        raise ValueError(f"class counts {counts!r} are invalid; expected (C,) counts >= 0")
    return counts.sum() / ((counts + CLASS_COUNT_PRIOR) * counts.size)


def video_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over each video's valid entries, then over videos (a video with none counts 0).

    Args: values (B, N); valid (B, N) bool. Returns: 0-dim.
    """
    weight = valid.to(values.dtype)
    per_video = (values * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)  # (B,)
    return per_video.mean()


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """(2r + 1,) float32 normalised Gaussian taps, r = int(GAUSSIAN_TRUNCATE * sigma + 0.5)."""
    if sigma <= 0:
        raise ValueError(f"soft-label sigma must be > 0, got {sigma}")
    radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return (taps / taps.sum()).float()


def hard_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, T) labels (-100 padding) -> (B, C, T) float one-hot, 0 on padding."""
    onehot = F.one_hot(labels.clamp(min=0), num_classes) * (labels >= 0)[:, :, None]  # (B, T, C)
    return onehot.transpose(1, 2).float()


def soft_targets(
    labels: torch.Tensor, mask: torch.Tensor, num_classes: int, sigma: float
) -> torch.Tensor:
    """One-hot labels smoothed along time, per video (scipy ``gaussian_filter1d``, mode
    ``reflect`` at each video's own first and last real frame).

    Args:
        labels: (B, T) long, -100 on padding.
        mask: (B, T) bool.
        num_classes: C.
        sigma: Gaussian sigma in frames.

    Returns:
        (B, C, T) float32, summing to 1 over classes on real frames, 0 on padding.
    """
    batch, frames = labels.shape
    taps = gaussian_kernel(sigma).to(labels.device)  # (K,)
    radius = taps.shape[0] // 2
    lengths = mask.sum(dim=1).clamp(min=1)[:, None, None]  # (B, 1, 1)
    offsets = torch.arange(-radius, radius + 1, device=labels.device)  # (K,)
    times = torch.arange(frames, device=labels.device)  # (T,)
    source = (times[:, None] + offsets[None, :])[None] % (2 * lengths)  # (B, T, K) in [0, 2L)
    source = torch.where(source < lengths, source, 2 * lengths - 1 - source)  # reflect into [0, L)
    source_labels = labels.clamp(min=0).gather(1, source.reshape(batch, -1))  # (B, T*K)
    flat_index = source_labels.view(batch, frames, -1) * frames + times[None, :, None]  # (B,T,K)
    weight = taps[None, None, :] * mask[:, :, None]  # (B, T, K), 0 for padded target frames
    out = torch.zeros(batch, num_classes * frames, device=labels.device)  # (B, C*T)
    out.scatter_add_(1, flat_index.reshape(batch, -1), weight.reshape(batch, -1))
    return out.view(batch, num_classes, frames)  # (B, C, T)


def cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    class_weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Class-weighted cross-entropy with (soft) targets, per-video mean over real frames.

    Args: logits (B, C, T); targets (B, C, T); mask (B, T) bool; class_weights (C,) or None.
    Returns: 0-dim.
    """
    log_probs = F.log_softmax(logits.float(), dim=1)  # (B, C, T)
    weighted = targets if class_weights is None else targets * class_weights.float()[None, :, None]
    per_frame = -(weighted * log_probs).sum(dim=1)  # (B, T)
    return video_mean(per_frame, mask)


def smoothing_loss(logits: torch.Tensor, mask: torch.Tensor, clamp: float) -> torch.Tensor:
    """MS-TCN's truncated MSE between neighbouring frames' log-probabilities.

    Args: logits (B, C, T); mask (B, T) bool; clamp: upper clamp of the squared difference.
    Returns: 0-dim mean over real neighbour pairs and classes (per video, then over videos).
    """
    logits = logits.float()
    later = F.log_softmax(logits[:, :, 1:], dim=1)  # (B, C, T-1)
    earlier = F.log_softmax(logits.detach()[:, :, :-1], dim=1)  # (B, C, T-1), no gradient
    squared = (later - earlier).square().clamp(max=clamp).mean(dim=1)  # (B, T-1), mean over C
    return video_mean(squared, mask[:, 1:] & mask[:, :-1])


def change_probability(logits: torch.Tensor) -> torch.Tensor:
    """Predicted probability of a label change between t and t+1.

    Args: logits (B, C, T). Returns: (B, T-1) ``1 - sum_c p_{t+1}(c) sg[p_t(c)]`` in [0, 1].
    """
    probs = torch.softmax(logits.float(), dim=1)  # (B, C, T)
    same = (probs[:, :, 1:] * probs.detach()[:, :, :-1]).sum(dim=1)  # (B, T-1)
    return (1.0 - same).clamp(0.0, 1.0)


def boundary_loss(logits: torch.Tensor, boundary: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE between :func:`change_probability` and ``boundary[:, 1:]`` over real pairs.

    Args: logits (B, C, T); boundary (B, T) soft target in [0, 1]; mask (B, T) bool.
    Returns: 0-dim.
    """
    change = change_probability(logits)  # (B, T-1)
    target = boundary[:, 1:].float()  # (B, T-1): the pair (t, t+1) is scored at t+1
    log_yes = torch.log(change).clamp(min=LOG_CLAMP)
    log_no = torch.log1p(-change).clamp(min=LOG_CLAMP)
    bce = -(target * log_yes + (1.0 - target) * log_no)  # (B, T-1)
    return video_mean(bce, mask[:, 1:] & mask[:, :-1])


def stream_loss(
    encoder_logits: torch.Tensor,
    decoder_logits: torch.Tensor,
    labels: torch.Tensor,
    boundary: torch.Tensor,
    mask: torch.Tensor,
    class_weights: Optional[torch.Tensor],
    cfg: LossConfig,
) -> StreamLoss:
    """All terms of one stream and their weighted sum.

    Args:
        encoder_logits: (B, C, T).
        decoder_logits: (B, C, T) x0 logits.
        labels: (B, T) long, -100 on padding.
        boundary: (B, T) soft boundary target.
        mask: (B, T) bool.
        class_weights: (C,) or None.
        cfg: term weights, smoothing clamp, soft-label sigma.
    """
    num_classes = encoder_logits.shape[1]
    if cfg.soft_label_sigma is None:
        targets = hard_targets(labels, num_classes)  # (B, C, T)
    else:
        targets = soft_targets(labels, mask, num_classes, cfg.soft_label_sigma)  # (B, C, T)
    values = {
        "encoder_ce": cross_entropy(encoder_logits, targets, mask, class_weights),
        "encoder_smooth": smoothing_loss(encoder_logits, mask, cfg.smooth_clamp),
        "decoder_ce": cross_entropy(decoder_logits, targets, mask, class_weights),
        "decoder_smooth": smoothing_loss(decoder_logits, mask, cfg.smooth_clamp),
        "decoder_boundary": boundary_loss(decoder_logits, boundary, mask),
    }
    total = sum(getattr(cfg, name) * values[name] for name in TERMS)
    assert isinstance(total, torch.Tensor)
    return StreamLoss(total, {name: v.detach() for name, v in values.items()})


