"""The host-side steps of a prediction in numpy alone (no torch, no scipy), for the ONNX runtime.

Each function restates one of the package's (named in its docstring) with the same arithmetic,
and ``tests/deploy/test_host.py`` pins it to that function: the timestep grids and the samplers'
updates (:mod:`twostream_das.diffusion.samplers`: DDIM, DPM-Solver++(2M) and its SDE; the
arithmetic that needs no tensors, the quadratic grid and DPM-Solver++'s weights, is not restated
but imported from :mod:`twostream_das.sampling_math`, which the package's samplers use too), the
offset views (:func:`twostream_das.data.dataset.view_offsets`), the label space
(:mod:`~twostream_das.diffusion.gaussian`), the noise seeds
(:func:`twostream_das.runtime.derive_seed`,
:func:`twostream_das.prediction.inference.content_digest`), late fusion
(:mod:`twostream_das.prediction.fusion`), post-processing
(:mod:`twostream_das.prediction.postprocess`, :mod:`twostream_das.data.temporal`) and the
per-frame uncertainty (:mod:`twostream_das.prediction.uncertainty`).

Shapes as in the package: probabilities and x_t ``(N, C, T)`` or ``(C, T)``; labels ``(T,)``.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional, Protocol

import numpy as np

from ..sampling_math import (
    SPACINGS,
    DDIMStepCoefficients,
    DPMStepCoefficients,
    RunHistory,
    ddim_coefficients,
    dpmpp_coefficients,
    timestep_grid,
)

SEED_BITS = 62  # twostream_das.runtime._SEED_BITS


# ----------------------------------------------------------------------------- sampler


def cosine_alphas_cumprod(num_train_timesteps: int, offset: float, max_beta: float) -> np.ndarray:
    """abar_n of :func:`twostream_das.diffusion.schedule.cosine_schedule`, float64 (N,)."""
    u = np.linspace(0.0, 1.0, num_train_timesteps + 1, dtype=np.float64)
    f = np.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = np.clip(1 - f[1:] / f[:-1], 0.0, max_beta)
    return np.cumprod(1 - betas)


class NoiseSource(Protocol):
    """Hands out the sampler's standard normal draws, one call per draw, in order."""

    def draw(self, shape: Sequence[int], lengths: Sequence[int]) -> np.ndarray:
        """The next draw, float32 ``shape`` = (N, C, T), zeros beyond each row's length."""
        ...


class RowNoise:
    """One numpy generator per row: row i draws ``C x lengths[i]`` values from its own
    generator (zeros beyond), as the package's per-video torch generators do (other numbers:
    numpy's, not torch's)."""

    def __init__(self, generators: Sequence[np.random.Generator]) -> None:
        self.generators = list(generators)

    def draw(self, shape: Sequence[int], lengths: Sequence[int]) -> np.ndarray:
        rows, channels, frames = shape
        if len(self.generators) != rows or len(lengths) != rows:
            raise ValueError(
                f"need one generator and one length per row: {rows} rows, "
                f"{len(self.generators)} generators, {len(lengths)} lengths"
            )
        out = np.zeros((rows, channels, frames), dtype=np.float32)  # (N, C, T)
        for i, (gen, length) in enumerate(zip(self.generators, lengths, strict=True)):
            out[i, :, : int(length)] = gen.standard_normal((channels, int(length)), np.float32)
        return out


class RecordedNoise:
    """Replays recorded draws in order (x_T first, then one per stochastic step): the draws
    another sampler made, e.g. the PyTorch path's (the parity tests)."""

    def __init__(self, draws: Sequence[np.ndarray]) -> None:
        self.draws = [np.asarray(d, dtype=np.float32) for d in draws]
        self.used = 0

    def draw(self, shape: Sequence[int], lengths: Sequence[int]) -> np.ndarray:
        if self.used >= len(self.draws):
            raise ValueError(f"draw {self.used + 1} asked for; only {len(self.draws)} recorded")
        out = self.draws[self.used]
        if tuple(out.shape) != tuple(shape):
            raise ValueError(
                f"recorded draw {self.used + 1} has shape {tuple(out.shape)}; the sampler asks "
                f"for {tuple(shape)}"
            )
        self.used += 1
        return out


class Sampler(Protocol):
    """What the runtime's loop needs of a host sampler (the package's
    :class:`twostream_das.diffusion.samplers.Sampler`, with the noise a :class:`NoiseSource`).

    Attributes:
        timesteps: the steps, descending; set by :meth:`set_timesteps`.
    """

    timesteps: list[int]

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose the n steps and prepare their updates (ValueError outside 1 .. N)."""
        ...

    @property
    def draws_per_run(self) -> int:
        """Noise draws one run makes: x_T, then one per stochastic step."""
        ...

    def initial_noise(
        self, shape: Sequence[int], noise: NoiseSource, lengths: Sequence[int]
    ) -> np.ndarray:
        """x at the first step (N, C, T)."""
        ...

    def step(
        self,
        x0_pred: np.ndarray,
        t: int,
        x_t: np.ndarray,
        noise: Optional[NoiseSource] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> np.ndarray:
        """One update from step ``t`` to the next: (N, C, T) -> (N, C, T) float32."""
        ...


def _draw(noise: Optional[NoiseSource], x_t: np.ndarray, lengths: Optional[Sequence[int]],
          what: str) -> np.ndarray:  # fmt: skip
    """The next draw of ``noise`` of x_t's shape (N, C, T), all frames real unless ``lengths``."""
    if noise is None:
        raise ValueError(f"a noise source is needed for a stochastic step ({what})")
    rows, _, frames = x_t.shape
    return noise.draw(x_t.shape, lengths if lengths is not None else [frames] * rows)


class _GridSampler:
    """What the host samplers share: the training schedule's abar, the timestep spacing, the
    grid of n steps, and pure noise at the first step.

    Args:
        alphas_cumprod: (N,) float64 abar of the training schedule.
        spacing: where the steps lie (:data:`SPACINGS`; linear = DiffAct's grid).
    """

    def __init__(self, alphas_cumprod: Sequence[float], spacing: str = "linear") -> None:
        if spacing not in SPACINGS:
            raise ValueError(f"timestep spacing {spacing!r} is unknown; expected one of {SPACINGS}")
        self.alphas_cumprod = [float(a) for a in alphas_cumprod]
        self.spacing = spacing
        self.timesteps: list[int] = []

    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    def _grid(self, num_inference_steps: int) -> list[int]:
        """The n steps descending, then -1 (``self.timesteps`` set to the n steps)."""
        grid = timestep_grid(self.num_train_timesteps, num_inference_steps, self.spacing)
        self.timesteps = grid[:-1]
        return grid

    def initial_noise(
        self, shape: Sequence[int], noise: NoiseSource, lengths: Sequence[int]
    ) -> np.ndarray:
        """x at the first step: pure noise (N, C, T)."""
        return noise.draw(shape, lengths)


class DDIMSampler(_GridSampler):
    """:class:`twostream_das.diffusion.ddim.DDIMSampler` in numpy, with the same contract:
    ``set_timesteps(n)``, ``timesteps``, ``initial_noise``, ``step(x0, t, x_t, noise)``.

    Args:
        alphas_cumprod: (N,) float64 abar of the training schedule.
        eta: stochasticity (1.0 = DiffAct's default).
        spacing: where the steps lie (:data:`SPACINGS`; linear = DiffAct's grid).
    """

    def __init__(
        self, alphas_cumprod: Sequence[float], eta: float = 1.0, spacing: str = "linear"
    ) -> None:
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        super().__init__(alphas_cumprod, spacing)
        self.eta = float(eta)
        self._coefficients: dict[int, DDIMStepCoefficients] = {}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> DDIMSampler:
        """From the manifest's ``sampler`` entry: its ``alphas_cumprod``, ``eta`` and
        ``timestep_spacing`` (``linear`` where a folder does not record it)."""
        return cls(spec["alphas_cumprod"], spec["eta"], spec.get("timestep_spacing", "linear"))

    @property
    def draws_per_run(self) -> int:
        """x_T, then one draw per step with sigma > 0."""
        return 1 + sum(1 for c in self._coefficients.values() if c.sigma > 0)

    def set_timesteps(self, num_inference_steps: int) -> None:
        grid, abar = self._grid(num_inference_steps), self.alphas_cumprod
        self._coefficients = {
            t: ddim_coefficients(abar[t], abar[t_prev] if t_prev >= 0 else 1.0, self.eta)
            for t, t_prev in zip(grid[:-1], grid[1:], strict=True)
        }

    def step(
        self,
        x0_pred: np.ndarray,
        t: int,
        x_t: np.ndarray,
        noise: Optional[NoiseSource] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> np.ndarray:
        """One update from step ``t`` to the next: (N, C, T) -> (N, C, T) (float32)."""
        if t not in self._coefficients:
            raise ValueError(f"step {t} is not one of this sampler's timesteps (set_timesteps?)")
        c = self._coefficients[t]
        eps = (x_t - np.float32(c.sqrt_abar) * x0_pred) / np.float32(c.sqrt_one_minus_abar)
        x_prev = np.float32(c.sqrt_abar_prev) * x0_pred + np.float32(c.direction) * eps
        if c.sigma > 0:
            draw = _draw(noise, x_t, lengths, "DDIM with eta > 0")
            x_prev = x_prev + np.float32(c.sigma) * draw
        return x_prev


class DPMSolverPPSampler(_GridSampler):
    """:class:`twostream_das.diffusion.samplers.DPMSolverPPSampler` in numpy (DPM-Solver++(2M),
    ODE or SDE), with the contract of :class:`DDIMSampler` and the package's weights
    (:func:`twostream_das.sampling_math.dpmpp_coefficients`, imported, not restated).

    A second-order step needs the previous step's x0 estimate of the same run: as in the
    package, it is kept keyed by the array the step returned (held weakly), so one sampler
    serves several runs stepping in turn (the runtime's streams). The SDE draws noise at every
    step but the last (one draw of ``noise`` per step).

    Args:
        alphas_cumprod: (N,) float64 abar of the training schedule.
        stochastic: the SDE variant (``dpmpp_2m_sde``).
        spacing: where the steps lie (:data:`SPACINGS`).
    """

    def __init__(
        self, alphas_cumprod: Sequence[float], stochastic: bool = False, spacing: str = "linear"
    ) -> None:
        super().__init__(alphas_cumprod, spacing)
        self.stochastic = bool(stochastic)
        self._index: dict[int, int] = {}
        self._coefficients: list[DPMStepCoefficients] = []
        self._pending = RunHistory("array")  # id(x_prev returned) -> its run's history

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> DPMSolverPPSampler:
        """``dpmpp_2m`` from the manifest's ``sampler`` entry (``alphas_cumprod``,
        ``timestep_spacing``)."""
        return cls(spec["alphas_cumprod"], False, spec.get("timestep_spacing", "linear"))

    @classmethod
    def sde_from_spec(cls, spec: Mapping[str, Any]) -> DPMSolverPPSampler:
        """``dpmpp_2m_sde`` from the manifest's ``sampler`` entry."""
        return cls(spec["alphas_cumprod"], True, spec.get("timestep_spacing", "linear"))

    @property
    def draws_per_run(self) -> int:
        """x_T, then one draw per step with a noise weight (the SDE: every step but the last)."""
        return 1 + sum(1 for c in self._coefficients if c.noise)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """The n steps and their weights; forgets every run's history."""
        grid = self._grid(num_inference_steps)
        self._index = {t: i for i, t in enumerate(self.timesteps)}
        self._coefficients = [
            dpmpp_coefficients(self.alphas_cumprod, grid, i, self.stochastic)
            for i in range(len(self.timesteps))
        ]
        self._pending.clear()

    def coefficients(self, t: int) -> DPMStepCoefficients:
        """The weights of the update from step ``t``."""
        if t not in self._index:
            raise ValueError(f"step {t} is not one of this sampler's timesteps (set_timesteps?)")
        return self._coefficients[self._index[t]]

    def step(
        self,
        x0_pred: np.ndarray,
        t: int,
        x_t: np.ndarray,
        noise: Optional[NoiseSource] = None,
        lengths: Optional[Sequence[int]] = None,
    ) -> np.ndarray:
        """One update from step ``t`` to the next: (N, C, T) -> (N, C, T) float32, the terms
        added in the package's order. ``x0_pred`` is kept for the run's next step (do not
        modify it in place); ``x_t`` is x_T or the array the previous step of the run returned.

        Raises:
            ValueError: ``t`` is not a timestep; a second-order step given another array than
                its run's previous step returned; the SDE without a noise source.
        """
        c = self.coefficients(t)
        index = self._index[t]
        x_prev = np.float32(c.x0) * x0_pred  # (N, C, T)
        if c.x_t:
            x_prev = x_prev + np.float32(c.x_t) * x_t
        if c.x0_prev:
            previous = self._pending.previous_x0(x_t, index, self.timesteps)
            x_prev = x_prev + np.float32(c.x0_prev) * previous
        if c.noise:
            x_prev = x_prev + np.float32(c.noise) * _draw(noise, x_t, lengths, "dpmpp_2m_sde")
        if index + 1 < len(self.timesteps):
            self._pending.remember(x_prev, index, x0_pred)
        return x_prev


SAMPLERS: dict[str, Callable[[Mapping[str, Any]], Sampler]] = {
    "ddim": DDIMSampler.from_spec,
    "dpmpp_2m": DPMSolverPPSampler.from_spec,
    "dpmpp_2m_sde": DPMSolverPPSampler.sde_from_spec,
}
"""The samplers the runtime implements: the name (``eval.sampler``) -> its ``from_spec`` over
the manifest's ``sampler`` entry (the package's :data:`twostream_das.diffusion.SAMPLERS`)."""


def model_input(x_t: np.ndarray, signal_scale: float) -> np.ndarray:
    """:meth:`GaussianDiffusion.model_input`: clamp to [-s, s], map to [0, 1]."""
    s = np.float32(signal_scale)
    return (np.clip(x_t, -s, s) / s + np.float32(1.0)) / np.float32(2.0)


def probs_to_x0(probs: np.ndarray, signal_scale: float) -> np.ndarray:
    """:meth:`GaussianDiffusion.probs_to_x0`: (2 p - 1) s."""
    return (np.float32(2.0) * probs - np.float32(1.0)) * np.float32(signal_scale)


def softmax(logits: np.ndarray, axis: int = -2) -> np.ndarray:
    """Softmax over ``axis`` (the classes of (..., C, T))."""
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------- views


VIEWS = ("all", "middle")
"""The values of ``eval.views`` (:class:`twostream_das.config.Views`)."""


def view_offsets(num_frames: int, sample_rate: int, views: str = "all") -> list[int]:
    """:func:`twostream_das.data.dataset.view_offsets`: the temporal offsets sampled; ``all``:
    0 .. r-1 (those with frames), ``middle``: ``r // 2`` alone (the last frame's offset in a
    video of at most ``r // 2`` frames)."""
    if views not in VIEWS:
        raise ValueError(f"views {views!r} is unknown; expected one of {VIEWS}")
    if views == "middle":
        return [min(sample_rate // 2, num_frames - 1)]
    return list(range(min(sample_rate, num_frames)))


# ----------------------------------------------------------------------------- seeds


def derive_seed(seed: int, *parts: object) -> int:
    """:func:`twostream_das.runtime.derive_seed`."""
    text = "|".join(str(p) for p in (int(seed), *parts))
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (1 << SEED_BITS)


def content_digest(features: Mapping[str, np.ndarray]) -> str:
    """:func:`twostream_das.prediction.inference.content_digest` of float32 (D, T) views (its dtype
    name is
    torch's, so both paths derive the same seeds)."""
    h = hashlib.blake2b(digest_size=16)
    for stream in sorted(features):
        x = np.ascontiguousarray(features[stream], dtype=np.float32)
        h.update(f"{stream}|{tuple(x.shape)}|torch.float32|".encode())
        h.update(x.tobytes())
    return h.hexdigest()


def view_generators(
    seed: int, features: Mapping[str, np.ndarray], offset: int, streams: Sequence[str], samples: int
) -> dict[str, list[np.random.Generator]]:
    """stream -> K numpy generators of one offset view, seeded as
    :func:`twostream_das.prediction.inference.view_generators` seeds its torch generators."""
    digest = content_digest(features)
    return {
        s: [np.random.default_rng(derive_seed(seed, "ddim", digest, offset, s, k))
            for k in range(samples)]
        for s in streams
    }  # fmt: skip


# ----------------------------------------------------------------------------- fusion


def temper(probs: np.ndarray, temperature: float, floor: float) -> np.ndarray:
    """:func:`twostream_das.prediction.fusion.temper`."""
    if temperature <= 0:
        raise ValueError(f"temperature = {temperature} is invalid; expected > 0")
    if temperature == 1.0:
        return probs
    return softmax(np.log(np.maximum(probs, floor)) / temperature, axis=-2)


def fuse(
    probs: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    rule: str = "sum",
    temperatures: Optional[Mapping[str, float]] = None,
    floor: float = 1e-8,
) -> np.ndarray:
    """:func:`twostream_das.prediction.fusion.fuse`: ``sum_s w_s P_s``, or for ``product`` the
    softmax
    over the classes of ``sum_s w_s log P_s``; each stream tempered first. (..., C, T)."""
    if set(weights) != set(probs):
        raise ValueError(f"fusion weights name {sorted(weights)}; the streams are {sorted(probs)}")
    temperatures = temperatures or {}
    tempered = {s: temper(p, float(temperatures.get(s, 1.0)), floor) for s, p in probs.items()}
    if rule == "product":
        terms = [float(weights[s]) * np.log(np.maximum(p, floor)) for s, p in tempered.items()]
        return softmax(_total(terms), axis=-2)
    if rule != "sum":
        raise ValueError(f"fusion rule {rule!r} is unknown; expected sum or product")
    return _total([float(weights[s]) * p for s, p in tempered.items()])


def fuse_normalized(
    probs: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    rule: str = "sum",
    temperatures: Optional[Mapping[str, float]] = None,
    floor: float = 1e-8,
) -> np.ndarray:
    """:func:`fuse` rescaled to probabilities (the weighted sum over the weights' sum; the
    product is normalised already): the consensus of fusion inside the sampler
    (``twostream_das.prediction.fusion.JointFusion``)."""
    fused = fuse(probs, weights, rule, temperatures, floor)
    if rule == "product":
        return fused
    return fused / float(sum(float(weights[s]) for s in probs))


def _total(terms: list[np.ndarray]) -> np.ndarray:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def normalize_frames(probs: np.ndarray) -> np.ndarray:
    """:func:`twostream_das.prediction.uncertainty.normalize_frames`: every frame sums to 1,
    float32."""
    total = probs.sum(axis=-2, keepdims=True)
    return (probs / np.where(total > 0, total, 1.0)).astype(np.float32)


def mutual_information(samples: np.ndarray) -> np.ndarray:
    """:func:`twostream_das.prediction.uncertainty.mutual_information`: (K, C, T) -> (T,)
    float32."""

    def entropy(p: np.ndarray, axis: int) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=axis)

    mean = samples.mean(axis=0)  # (C, T)
    mi = entropy(mean, 0) - entropy(samples, 1).mean(axis=0)
    return np.maximum(mi, 0.0).astype(np.float32)


# ----------------------------------------------------------------------------- temporal


def average_views(views: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`twostream_das.data.temporal.average_views`: cropped to the shortest, averaged."""
    length = min(v.shape[-1] for v in views)
    total = views[0][..., :length].copy()
    for view in views[1:]:
        total += view[..., :length]
    return total / len(views)


def restore_full_rate(x: np.ndarray, rate: int, num_frames: int) -> np.ndarray:
    """:func:`twostream_das.data.temporal.restore_full_rate`: (..., T_s) -> (..., T)."""
    length = x.shape[-1]
    if length < 1:
        raise ValueError("nothing to restore: the subsampled sequence has no frames")
    if rate == 1 and length == num_frames:
        return x
    t = np.arange(num_frames, dtype=np.int64)
    index = np.clip((t - rate // 2 + (rate - 1) // 2) // rate, 0, length - 1)
    return x[..., index]


# ----------------------------------------------------------------------------- post-processing


def segment_bounds(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`twostream_das.metrics.segment_bounds`: (labels (S,), starts (S,), ends (S,))."""
    arr = np.asarray(labels)
    if arr.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return arr[:0], empty, empty.copy()
    change = np.flatnonzero(arr[1:] != arr[:-1]) + 1
    starts = np.concatenate(([0], change)).astype(np.int64)
    ends = np.concatenate((change, [arr.size])).astype(np.int64)
    return arr[starts], starts, ends


def purge(labels: np.ndarray, min_len: int) -> np.ndarray:
    """:func:`twostream_das.prediction.postprocess.purge`: segments shorter than ``min_len``
    removed,
    shortest first, split between the neighbours."""
    arr = np.asarray(labels)
    seg_labels, starts, ends = segment_bounds(arr)
    if min_len == 1 or len(seg_labels) < 2:
        return arr.copy()
    size = (ends - starts).tolist()
    names = list(seg_labels)
    prev = [i - 1 for i in range(len(size))]
    nxt = [i + 1 if i + 1 < len(size) else -1 for i in range(len(size))]
    alive = [True] * len(size)
    heap = [(n, i) for i, n in enumerate(size)]
    heapq.heapify(heap)
    remaining = len(size)

    def unlink(i: int) -> None:
        alive[i] = False
        if prev[i] >= 0:
            nxt[prev[i]] = nxt[i]
        if nxt[i] >= 0:
            prev[nxt[i]] = prev[i]

    while remaining > 1 and heap:
        n, i = heapq.heappop(heap)
        if not alive[i] or n != size[i]:
            continue
        if n >= min_len:
            break
        left, right = prev[i], nxt[i]
        if left < 0:
            size[right] += n
        elif right < 0:
            size[left] += n
        else:
            size[left] += n // 2
            size[right] += n - n // 2
        unlink(i)
        remaining -= 1
        if left >= 0 and right >= 0 and names[left] == names[right]:
            size[left] += size[right]
            unlink(right)
            remaining -= 1
            right = -1
        for j in (left, right):
            if j >= 0:
                heapq.heappush(heap, (size[j], j))
    keep = [i for i in range(len(size)) if alive[i]]
    return np.repeat(np.asarray([names[i] for i in keep], dtype=arr.dtype), [size[i] for i in keep])


def diffact_purge(labels: np.ndarray, max_len: int) -> np.ndarray:
    """:func:`twostream_das.prediction.postprocess.diffact_purge`: DiffAct's one-pass purge."""
    arr = np.asarray(labels)
    seg_labels, starts, ends = segment_bounds(arr)
    out = arr.copy()
    last = len(seg_labels) - 1
    if last < 1:
        return out
    ends = ends.copy()
    ends[last] -= 1
    for e in range(last + 1):
        start, end = int(starts[e]), int(ends[e])
        length = end - start
        if length > max_len:
            continue
        if e == 0:
            out[start:end] = seg_labels[1]
        elif e == last:
            out[start:end] = seg_labels[e - 1]
        else:
            mid = start + length // 2
            out[start:mid] = seg_labels[e - 1]
            out[mid:end] = seg_labels[e + 1]
    return out


MEDIAN_CHUNK = 4096
"""Frames per chunk of :func:`median_filter` (bounds its window copy: C x chunk x N)."""


def median_filter(probs: np.ndarray, window: int) -> np.ndarray:
    """:func:`twostream_das.prediction.postprocess.median_filter` (``scipy.ndimage.median_filter``
    with
    ``size=(1, N)``, ``reflect`` ends, rank ``N // 2``), then renormalised per frame."""
    arr = np.asarray(probs)
    before, after = window // 2, window - 1 - window // 2
    padded = np.pad(arr, ((0, 0), (before, after)), mode="symmetric")  # (C, T + N - 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=1)  # (C, T, N)
    smooth = np.empty_like(arr)
    for lo in range(0, arr.shape[1], MEDIAN_CHUNK):
        part = np.partition(windows[:, lo : lo + MEDIAN_CHUNK], window // 2, axis=2)
        smooth[:, lo : lo + MEDIAN_CHUNK] = part[:, :, window // 2]
    total = smooth.sum(axis=0, keepdims=True)
    return smooth / np.where(total > 0, total, 1)


def mode_filter(labels: np.ndarray, window: int) -> np.ndarray:
    """:func:`twostream_das.prediction.postprocess.mode_filter`: the most frequent label in a
    centred
    window, ``reflect`` ends, ties to the smallest label."""
    arr = np.asarray(labels)
    if window == 1 or arr.size == 0:
        return arr.copy()
    classes, codes = np.unique(arr, return_inverse=True)
    before, after = window // 2, window - 1 - window // 2
    padded = np.pad(codes.reshape(-1), (before, after), mode="symmetric")
    onehot = padded[None, :] == np.arange(len(classes))[:, None]
    cum = np.zeros((len(classes), padded.size + 1), dtype=np.int64)
    np.cumsum(onehot, axis=1, out=cum[:, 1:])
    counts = cum[:, window:] - cum[:, :-window]
    return classes[np.argmax(counts, axis=0)]


POSTPROCESS_KINDS = ("none", "purge", "diffact_purge", "median", "mode")


def postprocess(
    probs: np.ndarray, kind: str, window: int, sample_rate: int = 1,
    num_frames: Optional[int] = None,
) -> np.ndarray:  # fmt: skip
    """:func:`twostream_das.prediction.postprocess.postprocess`: (C, T_s) -> (T,) int64 full-rate
    labels
    (median at the subsampled rate, argmax, full rate restored, then mode or purge)."""
    if kind not in POSTPROCESS_KINDS:
        raise ValueError(f"post-processing {kind!r} is unknown; expected one of "
                         f"{POSTPROCESS_KINDS}")
    arr = np.asarray(probs)
    num_frames = arr.shape[1] if num_frames is None else int(num_frames)
    if kind == "median":
        arr = median_filter(arr, window)
    labels = restore_full_rate(np.argmax(arr, axis=0).astype(np.int64), sample_rate, num_frames)
    if kind == "purge":
        return purge(labels, window)
    if kind == "diffact_purge":
        return diffact_purge(labels, window)
    if kind == "mode":
        return mode_filter(labels, window)
    return labels
