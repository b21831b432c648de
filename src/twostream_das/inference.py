"""The one prediction path, shared by validation, ``evaluate`` and ``predict``.

temporal-offset ensemble -> every stream -> late fusion -> post-processing -> labels:

1. every video is cut into its ``dataset.sample_rate`` offset views (one view when the rate is 1);
2. views are batched (``eval.batch_size``, grouped by length, padded with a mask) and every
   stream draws ``eval.samples`` DDIM samples per view with ``eval.steps`` steps (default: the
   model's) in one pass; each (view, stream, sample) has its own generator seeded from
   ``(eval.seed, digest of the view's features, offset, stream, k)``, so a video's prediction
   does not depend on its file name nor on what else is in the batch;
3. each view's probabilities are upsampled to the full frame rate and averaged over offsets,
   then over the samples;
4. :func:`decide` fuses the streams with the selected weights and post-processes to labels.

Memory grows linearly with the video length: nothing here builds a (T, T) tensor.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import Checkpoint, load_checkpoint
from .config import Config, FusionInput, PostprocessKind, config_fusion_weights, validate
from .data.collate import collate
from .data.dataset import Sample, Video, offset_views
from .data.temporal import upsample
from .fusion import FusionMethod, fuse
from .postprocess import postprocess
from .runtime import autocast, derive_seed, make_generator
from .two_stream import TwoStreamModel

logger = logging.getLogger(__name__)

GROUP_BATCHES = 8
"""Views of this many batches are sorted by length together before batching."""


@dataclass(frozen=True)
class PostprocessChoice:
    """A post-processing method and its window (frames)."""

    kind: PostprocessKind
    window: int

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "window": int(self.window)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PostprocessChoice:
        return cls(PostprocessKind(data["kind"]), int(data["window"]))  # type: ignore[arg-type]

    @classmethod
    def from_config(cls, cfg: Config) -> PostprocessChoice:
        return cls(cfg.postprocess.kind, cfg.postprocess.window)


@dataclass(frozen=True)
class Decision:
    """Labels of one video: fused and per stream (each post-processed the same way)."""

    fused_probs: np.ndarray  # (C, T) float32, before post-processing
    labels: np.ndarray  # (T,) int64, fused then post-processed
    stream_labels: dict[str, np.ndarray]  # stream -> (T,) int64, post-processed


@dataclass(frozen=True)
class VideoProbs:
    """Per-stream class probabilities of one video at the full frame rate.

    ``probs`` is the mean of the K samples (``eval.samples``; K = 1 by default); ``samples``
    keeps each sample's final probabilities, and ``trajectory`` the x0 probabilities averaged
    over the DDIM steps and the samples. All are averaged over the temporal offsets.
    """

    name: str
    probs: dict[str, np.ndarray]  # stream -> (C, T) float32
    labels: Optional[np.ndarray]  # (T,) int64 ground truth, or None
    samples: dict[str, np.ndarray] = field(default_factory=dict)  # stream -> (K, C, T)
    trajectory: dict[str, np.ndarray] = field(default_factory=dict)  # stream -> (C, T)

    @property
    def num_frames(self) -> int:
        return next(iter(self.probs.values())).shape[1]

    def for_fusion(self, kind: FusionInput) -> dict[str, np.ndarray]:
        """What the streams hand to the fusion (``fusion.input``): stream -> (C, T)."""
        if kind is FusionInput.TRAJECTORY:
            if set(self.trajectory) != set(self.probs):
                raise ValueError(
                    f"video {self.name} has no DDIM trajectory mean for every stream (has "
                    f"{sorted(self.trajectory)}); fusion.input = trajectory needs it"
                )
            return self.trajectory
        return self.probs


@dataclass(frozen=True)
class VideoPrediction:
    """Everything predicted for one video."""

    video: VideoProbs
    decision: Decision

    @property
    def name(self) -> str:
        return self.video.name


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a checkpoint, with what was stored beside its weights."""

    model: TwoStreamModel
    config: Config
    checkpoint: Checkpoint

    @property
    def label_names(self) -> list[str]:
        return list(self.checkpoint.label_names)

    @property
    def fusion_weights(self) -> dict[str, float]:
        """Weights selected on validation, or the config's until selection ran."""
        selection = self.checkpoint.selection
        if selection and "fusion_weights" in selection:
            stored = selection["fusion_weights"]
            return {s: float(stored[s]) for s in self.model.stream_names}
        return config_fusion_weights(self.config)

    @property
    def postprocess(self) -> PostprocessChoice:
        selection = self.checkpoint.selection
        if selection and "postprocess" in selection:
            return PostprocessChoice.from_dict(selection["postprocess"])
        return PostprocessChoice.from_config(self.config)

    @property
    def fusion_method(self) -> FusionMethod:
        """The configured rule with the temperatures selected on validation (none before)."""
        selection = self.checkpoint.selection or {}
        temperatures = {s: float(t) for s, t in (selection.get("temperatures") or {}).items()}
        return FusionMethod.from_config(self.config.fusion, temperatures)


def with_sampling(
    cfg: Config, steps: Optional[int] = None, samples: Optional[int] = None
) -> Config:
    """``cfg`` with ``eval.steps`` / ``eval.samples`` replaced where given (the ``--steps`` and
    ``--samples`` options), checked like any config value.

    Raises:
        ConfigError: a value out of range, naming the key.
    """
    changes = {k: v for k, v in (("steps", steps), ("samples", samples)) if v is not None}
    if not changes:
        return cfg
    out = replace(cfg, eval=replace(cfg.eval, **changes))
    validate(out)
    return out


def sampling_steps(loaded: LoadedModel, cfg: Optional[Config] = None) -> int:
    """The number of DDIM steps inference runs with: ``eval.steps``, else the model's."""
    cfg = cfg or loaded.config
    return cfg.eval.steps or cfg.model.diffusion.num_inference_steps


def load_model(path: str | Path, device: torch.device) -> LoadedModel:
    """Rebuild the model stored in checkpoint ``path`` (eval mode, on ``device``)."""
    ckpt = load_checkpoint(path)
    cfg = ckpt.to_config()
    model = TwoStreamModel.from_config(cfg, dict(ckpt.stream_dims), len(ckpt.label_names))
    model.load_state_dict(ckpt.weights)
    model.to(device).eval()
    return LoadedModel(model, cfg, ckpt)


def content_digest(features: Mapping[str, torch.Tensor]) -> str:
    """A hex digest of a view's features, stream by stream (names, shapes, dtypes and bytes).

    The DDIM noise of a view is seeded by this, not by the video's file name: the same features
    give the same prediction whatever the file is called (issue 14). About 10 ms per GTEA video.
    """
    h = hashlib.blake2b(digest_size=16)
    for stream in sorted(features):
        x = features[stream].detach().to("cpu").contiguous()
        h.update(f"{stream}|{tuple(x.shape)}|{x.dtype}|".encode())
        h.update(x.numpy().tobytes())
    return h.hexdigest()


def view_generators(
    seed: int, sample: Sample, streams: Sequence[str], samples: int
) -> dict[str, list[torch.Generator]]:
    """The DDIM noise generators of one offset view of one video: stream -> K generators, one
    per (view, stream, sample), each seeded from ``(seed, digest of the view's features, offset,
    stream, k)``, so no stream or sample shares a generator and a video's draws do not depend on
    its file name.

    CPU generators on every device: the model draws on ``generator.device`` and moves the noise,
    so a video gets the same noise on CPU and GPU.
    """
    digest = content_digest(sample.features)
    return {
        s: [make_generator(derive_seed(seed, "ddim", digest, sample.offset, s, k))
            for k in range(samples)]
        for s in streams
    }  # fmt: skip


def predict_probabilities(
    model: TwoStreamModel,
    videos: Sequence[Video],
    cfg: Config,
    device: torch.device,
    progress: bool = False,
    desc: str = "predict",
) -> Iterator[VideoProbs]:
    """Per-stream probabilities of every video at full frame rate, in the order of ``videos``.

    Offset views of all videos (and all streams, and ``eval.samples`` samples of each) are
    batched together, ``cfg.eval.batch_size`` views per batch, grouped by length (see
    :func:`_length_batches`); a video's result does not depend on its batch, and videos are
    yielded in the order of ``videos``, each as soon as all its views are done.
    """
    rate = cfg.dataset.sample_rate
    was_training = model.training
    model.eval()
    pending: dict[int, dict[str, list[np.ndarray]]] = {}  # video -> "samples"/"trajectory" sums
    done_views: dict[int, int] = {}  # video index -> views predicted so far
    total_views: dict[int, int] = {}  # video index -> views it has
    next_to_yield = 0
    bar = tqdm(total=len(videos), desc=desc, unit="video", disable=not progress, leave=False)
    try:
        for chunk in _length_batches(_views(videos, cfg, total_views), cfg.eval.batch_size):
            outs = _predict_views(model, [s for _, s in chunk], cfg, device)
            for (index, sample), view in zip(chunk, outs, strict=True):
                frames = videos[index].num_frames
                acc = pending.setdefault(index, {})
                for key, per_stream in view.items():
                    sums = acc.setdefault(key, {})
                    for s, p in per_stream.items():  # (..., T_view) -> full frame rate
                        full = upsample(p, rate, sample.offset, frames)
                        sums[s] = full.copy() if s not in sums else sums[s] + full
                done_views[index] = done_views.get(index, 0) + 1
            while done_views.get(next_to_yield, -1) == total_views.get(next_to_yield):
                video = videos[next_to_yield]
                count = done_views.pop(next_to_yield)
                acc = pending.pop(next_to_yield)
                bar.update(1)
                samples = {s: (p / count).astype(np.float32) for s, p in acc["samples"].items()}
                yield VideoProbs(
                    video.name,
                    {s: p.mean(axis=0) for s, p in samples.items()},
                    video.labels,
                    samples,
                    {s: (p / count).astype(np.float32) for s, p in acc["trajectory"].items()},
                )
                next_to_yield += 1
    finally:
        bar.close()
        model.train(was_training)


def fused_labels(
    probs: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    post: PostprocessChoice,
    method: Optional[FusionMethod] = None,
) -> np.ndarray:
    """The fused, post-processed labels (T,) of :func:`decide` alone (what a search scores)."""
    fused = np.asarray(fuse(probs, weights, method), dtype=np.float32)  # (C, T)
    return np.asarray(postprocess(fused, post.kind, post.window), dtype=np.int64)


def decide(
    probs: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    post: PostprocessChoice,
    method: Optional[FusionMethod] = None,
) -> Decision:
    """Fuse per-stream probabilities ``(C, T)`` with ``weights`` (and ``method``: rule and
    temperatures; None = the paper's weighted sum) and post-process to labels. The streams'
    own labels come from their probabilities as given (a temperature moves no argmax)."""
    fused = np.asarray(fuse(probs, weights, method), dtype=np.float32)  # (C, T)
    labels = np.asarray(postprocess(fused, post.kind, post.window), dtype=np.int64)
    stream_labels = {
        s: np.asarray(postprocess(probs[s], post.kind, post.window), dtype=np.int64)
        for s in probs
    }
    return Decision(fused, labels, stream_labels)


def predict(
    model: TwoStreamModel,
    videos: Sequence[Video],
    cfg: Config,
    weights: Mapping[str, float],
    post: PostprocessChoice,
    device: torch.device,
    progress: bool = False,
    desc: str = "predict",
    method: Optional[FusionMethod] = None,
) -> Iterator[VideoPrediction]:
    """The full path for every video: probabilities, fusion, post-processing, labels."""
    for video in predict_probabilities(model, videos, cfg, device, progress, desc):
        yield VideoPrediction(
            video, decide(video.for_fusion(cfg.fusion.input), weights, post, method)
        )


# ----------------------------------------------------------------------------- helpers


def _views(
    videos: Sequence[Video], cfg: Config, counts: dict[int, int]
) -> Iterator[tuple[int, Sample]]:
    """Offset views of every video, in order; records each video's view count in ``counts``."""
    for index, video in enumerate(videos):
        views = offset_views(video, cfg.dataset.sample_rate, cfg.dataset.boundary_sigma)
        counts[index] = len(views)
        yield from ((index, sample) for sample in views)


def _length_batches(
    items: Iterable[tuple[int, Sample]], size: int
) -> Iterator[list[tuple[int, Sample]]]:
    """Batches of ``size`` views, grouped by length: the views of ``GROUP_BATCHES`` batches at a
    time (in video order), sorted longest first, so a batch pads little; memory stays bounded
    and videos are still yielded in order, a window at a time."""
    window: list[tuple[int, Sample]] = []
    for item in items:
        window.append(item)
        if len(window) == size * GROUP_BATCHES:
            yield from _sorted_batches(window, size)
            window = []
    yield from _sorted_batches(window, size)


def _sorted_batches(
    items: list[tuple[int, Sample]], size: int
) -> Iterator[list[tuple[int, Sample]]]:
    ordered = sorted(items, key=lambda item: -item[1].num_frames)  # stable: ties in video order
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


@torch.inference_mode()
def _predict_views(
    model: TwoStreamModel, samples: list[Sample], cfg: Config, device: torch.device
) -> list[dict[str, dict[str, np.ndarray]]]:
    """All streams on a batch of views, K samples each (``eval.samples``, ``eval.steps``).

    Returns, per view: ``{"samples": stream -> (K, C, T_view), "trajectory": stream ->
    (C, T_view)}`` float32 (the trajectory mean averaged over the K samples).
    """
    batch = collate(samples).to(device)
    count, streams = cfg.eval.samples, model.stream_names
    per_view = [view_generators(cfg.eval.seed, s, streams, count) for s in samples]
    generators = {  # stream -> K * B, sample-major
        s: [gens[s][k] for k in range(count) for gens in per_view] for s in streams
    }
    with autocast(device, cfg.train.amp, cfg.eval.cpu_bf16):
        out = model.sample(batch.features, batch.mask, generators, cfg.eval.steps, count)
    lengths = batch.mask.sum(dim=1).tolist()  # (B,)
    final = {s: r.probs.float().cpu().numpy() for s, r in out.items()}  # (K, B, C, T)
    path = {s: r.trajectory_mean.mean(0).float().cpu().numpy() for s, r in out.items()}
    return [
        {
            "samples": {s: final[s][:, b, :, : int(n)] for s in streams},
            "trajectory": {s: path[s][b, :, : int(n)] for s in streams},
        }
        for b, n in enumerate(lengths)
    ]
