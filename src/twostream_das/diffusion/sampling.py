"""The one sampling loop, outside the networks (improved-diffusion's ``ddim_sample_loop``),
over any :class:`~twostream_das.diffusion.samplers.Sampler`.

    sampler = make_sampler(cfg)                  # eval.sampler with eval.steps, per call
    out = sample(denoiser, sampler, diffusion, (N, C, T), generators, lengths)
    out.probs             # (N, C, T) class probabilities of the final x0 estimate
    out.trajectory_mean   # (N, C, T) the same probabilities averaged over the n steps

A denoiser maps the network's view of x_t, ``(N, C, T)`` in [0, 1], and the step ``t`` to x0
logits ``(N, C, T)``. It may be one stream's decoder over B videos, the stacked decoder of G
streams, or either over K samples per video: the loop does not know. The N rows are independent:
row i starts from noise drawn from ``generators[i]`` alone, at its real length ``lengths[i]``,
and every stochastic step draws from the same generator, so a row's trajectory does not depend
on the other rows nor on the padded length. The caller gives each (video, offset, stream,
sample) its own generator (``inference.view_generators``); nothing is forked or skipped.

Per step (the loop of :mod:`.samplers.base`): ``p_t = softmax(logits_t)``, the x0
estimate ``(2 p_t - 1) s`` feeds the update, and ``p_t`` is added to the trajectory sum.
``probs`` is ``softmax(logits)`` of the last step in float32, DiffAct's output (its final x0
estimate mapped back to [0, 1]).

With a ``consensus`` (fusion inside the sampler), ``p_t`` is replaced at every step by what
the consensus makes of all rows' ``p_t`` before it feeds the updates, the trajectory and the
output: rows that are the streams of one video then continue from one fused x0 estimate, each
with its own x_t and noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Optional, Protocol

import torch

from .gaussian import GaussianDiffusion
from .samplers import NoiseSource, Sampler, per_video_noise


class Denoiser(Protocol):
    """``(x_in (N, C, T) in [0, 1], t) -> (N, C, T) x0 logits``."""

    def __call__(self, x_in: torch.Tensor, t: int) -> torch.Tensor: ...


class Consensus(Protocol):
    """``(N, C, T) x0 class probabilities -> (N, C, T)`` probabilities: what every row
    continues from (e.g. the streams of a video fused, :class:`~twostream_das.prediction.fusion.
    JointFusion`)."""

    def __call__(self, probs: torch.Tensor) -> torch.Tensor: ...


class SampleResult(NamedTuple):
    """What one sampling run returns (float32, shapes as the caller's rows: (N, C, T), or
    (K, B, C, T) where a model splits its rows into K samples of B videos).

    Attributes:
        probs: class probabilities of the final x0 estimate.
        trajectory_mean: the x0 class probabilities averaged over the n DDIM steps.
    """

    probs: torch.Tensor
    trajectory_mean: torch.Tensor

    def reshape(self, *shape: int) -> SampleResult:
        return SampleResult(self.probs.reshape(shape), self.trajectory_mean.reshape(shape))


def sample_passes(samples: int, per_pass: Optional[int] = None) -> list[range]:
    """The K samples split into passes of ``per_pass`` (None: one pass), in order; the last
    pass holds the remainder. ``sample_passes(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]``.

    Raises:
        ValueError: ``samples`` or ``per_pass`` < 1.
    """
    if samples < 1 or (per_pass is not None and per_pass < 1):
        raise ValueError(f"need samples >= 1 and per_pass >= 1; got {samples}, {per_pass}")
    size = samples if per_pass is None else min(per_pass, samples)
    return [range(a, min(a + size, samples)) for a in range(0, samples, size)]


def concat_results(parts: Sequence[SampleResult], dim: int) -> SampleResult:
    """Results of several passes joined along ``dim`` (one part: itself, no copy)."""
    if len(parts) == 1:
        return parts[0]
    return SampleResult(
        torch.cat([p.probs for p in parts], dim=dim),
        torch.cat([p.trajectory_mean for p in parts], dim=dim),
    )


def sample(
    denoiser: Denoiser,
    sampler: Sampler,
    diffusion: GaussianDiffusion,
    shape: Sequence[int],
    generators: Sequence[torch.Generator] | NoiseSource,
    lengths: Optional[Sequence[int]] = None,
    device: torch.device | str = "cpu",
    consensus: Optional[Consensus] = None,
) -> SampleResult:
    """From pure noise to x0 class probabilities (see the module docstring).

    Args:
        denoiser: x_in, t -> x0 logits.
        sampler: the steps and their updates, timesteps set
            (:func:`~twostream_das.diffusion.samplers.make_sampler`).
        diffusion: the label space (signal scale, the network's view of x_t).
        shape: (N, C, T).
        generators: one per row; or one :class:`~twostream_das.diffusion.samplers.NoiseSource`
            for all rows (e.g. draws recorded from another sampler).
        lengths: real frames per row (default T); frames beyond are padding.
        device: where x lives.
        consensus: applied to every step's x0 probabilities of all rows (fusion inside the
            sampler); None = each row on its own.

    Returns:
        :class:`SampleResult` with (N, C, T) tensors (padded frames hold meaningless values).
    """
    if not isinstance(generators, NoiseSource) and len(generators) != shape[0]:
        raise ValueError(f"need one generator per row: {shape[0]} rows, {len(generators)} given")
    x = per_video_noise(shape, generators, lengths, torch.device(device))  # (N, C, T) x_T
    total = torch.zeros(tuple(shape), dtype=torch.float32, device=x.device)  # (N, C, T)
    logits = p = x
    for t in sampler.timesteps:
        logits = denoiser(diffusion.model_input(x), t)  # (N, C, T)
        p = torch.softmax(logits, dim=1)  # (N, C, T) x0 class probabilities
        if consensus is not None:
            p = consensus(p)  # (N, C, T) what every row continues from
        total.add_(p)
        x = sampler.step(diffusion.probs_to_x0(p), t, x, generators, lengths)
    if p.dtype == torch.float32:
        probs = p
    else:
        probs = torch.softmax(logits.float(), dim=1)
        probs = probs if consensus is None else consensus(probs)
    return SampleResult(probs, total.div_(len(sampler.timesteps)))


def sample_in_passes(
    denoiser_for: Callable[[int], Denoiser],
    sampler: Sampler,
    diffusion: GaussianDiffusion,
    shape: Sequence[int],
    generators: Sequence[Sequence[torch.Generator]],
    samples: int,
    samples_per_pass: Optional[int] = None,
    lengths: Optional[Sequence[int]] = None,
    device: torch.device | str = "cpu",
    consensus: Optional[Consensus] = None,
) -> SampleResult:
    """K samples of G groups (streams) of B videos, in passes of ``samples_per_pass`` samples
    (:func:`sample_passes`): one :func:`sample` loop per pass over its G * k * B rows (group-major,
    then sample, then video), the one wrapper of the loop that every model uses.

    Args:
        denoiser_for: k -> the denoiser of a pass of k samples (G * k * B rows).
        shape: (G, B, C, T).
        generators: per group K * B generators, sample-major (row k * B + b: sample k of
            video b).
        lengths: real frames per video (B,); default T.

    Returns:
        :class:`SampleResult` of (G, K, B, C, T) tensors.
    """
    groups, batch, classes, frames = shape
    lengths = [frames] * batch if lengths is None else list(lengths)
    parts = []
    for chunk in sample_passes(samples, samples_per_pass):  # the samples of one pass
        k = len(chunk)
        rows_of = slice(chunk.start * batch, chunk.stop * batch)
        parts.append(sample(
            denoiser_for(k),
            sampler,
            diffusion,
            (groups * k * batch, classes, frames),
            [g for group in generators for g in group[rows_of]],
            lengths * (groups * k),
            device,
            consensus,
        ).reshape(groups, k, batch, classes, frames))  # fmt: skip
    return concat_results(parts, dim=1)  # (G, K, B, C, T)
