"""The one prediction path, shared by validation, ``evaluate`` and ``predict``.

temporal-offset ensemble -> every stream -> late fusion -> post-processing -> labels, as DiffAct's
test loop does it (METHOD.md section 6):

1. every video is cut into its ``dataset.sample_rate`` offset views (one view when the rate is 1;
   with ``eval.views: middle`` only the middle offset, ``r // 2``, DiffAct's decoder-noagg);
2. views are batched (:func:`batch_plan`: ``eval.batch_size``, grouped by length, padded with
   a mask) and every stream draws ``eval.samples`` samples per view with the sampler
   :func:`~twostream_das.diffusion.make_sampler` builds (``eval.sampler``, ``eval.steps``
   steps), in passes of :func:`samples_per_pass` samples; each (view,
   stream, sample) has its own generator seeded from ``(eval.seed, digest of the view's
   features, offset, stream, k)``, so a video's prediction does not depend on its file name
   nor on what else is in the batch;
3. per stream, the views' probabilities (each sample's, and the trajectory means) are cropped to
   the shortest view and averaged at the subsampled rate, then over the samples
   (:class:`VideoProbs`);
4. :func:`decide` fuses the streams there with the selected weights and post-processes
   (:func:`~twostream_das.prediction.postprocess.postprocess`: median filter at the subsampled rate,
   argmax,
   full rate restored by nearest neighbour, then mode or purge at full rate); every stream's own
   labels take the same path. Validation, ``evaluate`` and ``predict`` all go through it.

Memory grows linearly with the video length: nothing here builds a (T, T) tensor.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoint import Checkpoint, load_checkpoint, load_weights
from ..choices import FusionWeights, PostprocessChoice, Selection
from ..config import (
    EVAL_ACCELERATOR_BATCH,
    EVAL_CPU_PASS_FRAMES,
    FAST_SAMPLING,
    Config,
    FusionInput,
    FusionSampling,
    Views,
    validate,
)
from ..data.collate import Batch, collate
from ..data.dataset import Video, View, offset_views
from ..data.temporal import average_views, restore_full_rate
from ..diffusion import SampleResult, make_sampler
from ..errors import ConfigError
from ..model.multi_stream import MultiStreamModel, StreamDenoisers
from ..runtime import autocast, derive_seed, inference_dtype, make_generator
from .fusion import FusionMethod, JointFusion, fuse
from .postprocess import postprocess
from .stacked import choose_strategy
from .uncertainty import fused_samples, normalize_frames

logger = logging.getLogger(__name__)

GROUP_BATCHES = 8
"""Views of this many batches are sorted by length together before batching."""


@dataclass(frozen=True)
class Decision:
    """Labels of one video: fused and per stream (each post-processed the same way)."""

    fused_view_probs: np.ndarray  # (C, T_s) float32 fused, before post-processing
    labels: np.ndarray  # (T,) int64, fused then post-processed, full rate
    stream_labels: dict[str, np.ndarray]  # stream -> (T,) int64, post-processed, full rate
    sample_rate: int = 1

    @property
    def fused_probs(self) -> np.ndarray:
        """(C, T) the fused probabilities at the full frame rate: ``fused_view_probs`` restored
        by nearest neighbour like the labels (:func:`~twostream_das.data.temporal.
        restore_full_rate`); equal to it at sample rate 1."""
        return restore_full_rate(self.fused_view_probs, self.sample_rate, self.labels.shape[0])


@dataclass(frozen=True)
class VideoProbs:
    """Per-stream class probabilities of one video, averaged over its offset views.

    At ``dataset.sample_rate`` r = 1 they are at the full frame rate (T_s = T). At r > 1 they
    are at the subsampled rate, the views cropped to the shortest (T_s = min over offsets):
    frame j averages the views' frames at full-rate frames ``j * r .. j * r + r - 1``.
    :meth:`full_rate` restores any ``(..., T_s)`` array to the T full-rate frames the way the
    labels are restored (DiffAct's nearest neighbour from ticks at ``r // 2 + j * r``).

    ``probs`` is the mean of the K samples (``eval.samples``; K = 1 by default); ``samples``
    keeps each sample's final probabilities, ``sample_trajectories`` each sample's x0
    probabilities averaged over its DDIM steps, and ``trajectory`` their mean over the samples.
    All are averaged over the temporal offsets.
    """

    name: str
    probs: dict[str, np.ndarray]  # stream -> (C, T_s) float32
    labels: Optional[np.ndarray]  # (T,) int64 ground truth at the full rate, or None
    samples: dict[str, np.ndarray] = field(default_factory=dict)  # stream -> (K, C, T_s)
    trajectory: dict[str, np.ndarray] = field(default_factory=dict)  # stream -> (C, T_s)
    sample_rate: int = 1
    full_frames: Optional[int] = None  # T; None: T_s (only at r = 1)
    sample_trajectories: dict[str, np.ndarray] = field(default_factory=dict)  # (K, C, T_s)
    # fusion inside the sampler (fusion.sampling = joint): each joint sample's fused
    # probabilities, of its last step and averaged over its steps; None = fused afterwards
    joint_samples: Optional[np.ndarray] = None  # (K, C, T_s)
    joint_trajectories: Optional[np.ndarray] = None  # (K, C, T_s)

    def __post_init__(self) -> None:
        if self.sample_rate > 1 and self.full_frames is None:
            raise ValueError(f"video {self.name}: at sample rate > 1 full_frames is needed")

    @property
    def num_frames(self) -> int:
        """T, frames at the full rate."""
        if self.full_frames is not None:
            return int(self.full_frames)
        return next(iter(self.probs.values())).shape[1]

    def full_rate(self, x: np.ndarray) -> np.ndarray:
        """``(..., T_s) -> (..., T)`` by nearest neighbour (identity at r = 1)."""
        return restore_full_rate(x, self.sample_rate, self.num_frames)

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

    def sample_inputs(self, kind: FusionInput) -> dict[str, np.ndarray]:
        """Each sample's own fusion input (``fusion.input``): stream -> (K, C, T_s), its final
        x0 probabilities or its trajectory mean; their mean over K is :meth:`for_fusion`."""
        if kind is FusionInput.TRAJECTORY:
            if set(self.sample_trajectories) != set(self.probs):
                raise ValueError(
                    f"video {self.name} has no per-sample DDIM trajectory means for every "
                    f"stream (has {sorted(self.sample_trajectories)}); fusion.input = "
                    "trajectory needs them"
                )
            return self.sample_trajectories
        return self.samples

    def joint_sample_inputs(self, kind: FusionInput) -> Optional[np.ndarray]:
        """The joint samples' fused probabilities (``fusion.input``: of the last step or the
        trajectory mean), (K, C, T_s); None when the streams were sampled separately."""
        return self.joint_trajectories if kind is FusionInput.TRAJECTORY else self.joint_samples

    def joint_fused(self, kind: FusionInput) -> Optional[np.ndarray]:
        """(C, T_s) the joint samples' mean (:meth:`joint_sample_inputs`), or None."""
        joint = self.joint_sample_inputs(kind)
        return None if joint is None else joint.mean(axis=0)

    def fused_sample_probs(
        self,
        kind: FusionInput,
        weights: Mapping[str, float],
        method: Optional[FusionMethod] = None,
    ) -> np.ndarray:
        """(K, C, T_s) float32 each sample's fused probabilities, every frame summing to 1: the
        joint samples' own, or the streams' k-th samples fused as the prediction fuses
        (:func:`~twostream_das.prediction.uncertainty.fused_samples`). What the uncertainty
        describes."""
        joint = self.joint_sample_inputs(kind)
        if joint is not None:
            return normalize_frames(joint)
        return fused_samples(self.sample_inputs(kind), weights, method)

    def with_joint(self, stream: str) -> VideoProbs:
        """This video as if sampled jointly with all the weight on ``stream``: the consensus is
        that stream's own estimate at every step, so its joint samples are its own samples
        (the same generators)."""
        return replace(
            self,
            joint_samples=self.samples[stream],
            joint_trajectories=self.sample_trajectories.get(stream),
        )


@dataclass(frozen=True)
class VideoPrediction:
    """Everything predicted for one video."""

    video: VideoProbs
    decision: Decision

    @property
    def name(self) -> str:
        return self.video.name

    def label_rows(self) -> Optional[dict[str, np.ndarray]]:
        """With ground truth: ``"gt"``, each stream's and the ``"fused"`` labels, (T,) each (what
        :func:`~twostream_das.workflows.selection.score_rows` scores); None without."""
        if self.video.labels is None:
            return None
        decision = self.decision
        return {"gt": self.video.labels, **decision.stream_labels, "fused": decision.labels}


@dataclass(frozen=True, repr=False)
class LoadedModel:
    """A model rebuilt from a checkpoint, with what was stored beside its weights.

    ``loaded.predict(features, ...)`` is :func:`twostream_das.predict` (and the other
    ``predict_*`` functions take it too); ``loaded.to("cuda")`` moves the model in place.
    """

    model: MultiStreamModel
    config: Config
    checkpoint: Checkpoint

    @property
    def label_names(self) -> list[str]:
        return list(self.checkpoint.label_names)

    @property
    def class_names(self) -> list[str]:
        """The classes in id order (``label_names``)."""
        return self.label_names

    @property
    def streams(self) -> dict[str, int]:
        """Stream name -> the feature dimension it reads, in the model's order."""
        return {s: int(self.checkpoint.stream_dims[s]) for s in self.model.stream_names}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the model to ``device`` (``cpu``, ``cuda``, ``cuda:1``, ``auto``) in place;
        returns self."""
        from ..runtime import resolve_device

        self.model.to(device if isinstance(device, torch.device) else resolve_device(device))
        return self

    def predict(self, features: Mapping[str, object], **kwargs: object) -> object:
        """:func:`twostream_das.predict` with this model: ``loaded.predict({"rgb": x, ...})``."""
        from ..api import predict as api_predict

        return api_predict(self, features, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        streams = ", ".join(f"{s}={d}" for s, d in self.streams.items())
        weights = ", ".join(f"{s}={w:g}" for s, w in self.fusion_weights.to_dict().items())
        return (f"LoadedModel(streams=({streams}), classes={len(self.label_names)}, "
                f"epoch={self.checkpoint.epoch}, fusion=({weights}), "
                f"postprocess={self.postprocess.kind.value} {self.postprocess.window}, "
                f"device={self.device})")

    @property
    def selection(self) -> Selection:
        """What validation chose, or the configured choices until selection ran."""
        stored = self.checkpoint.selection
        if stored is None:
            return Selection.configured(self.config, self.checkpoint.epoch)
        return stored

    @property
    def fusion_weights(self) -> FusionWeights:
        """Weights selected on validation, or the config's until selection ran."""
        return self.selection.fusion_weights

    @property
    def postprocess(self) -> PostprocessChoice:
        return self.selection.postprocess

    @property
    def fusion_method(self) -> FusionMethod:
        """The configured rule with the temperatures selected on validation (none before)."""
        return FusionMethod.from_config(self.config.fusion, self.selection.temperatures)


def with_sampling(
    cfg: Config,
    steps: Optional[int] = None,
    samples: Optional[int] = None,
    *,
    sampler: Optional[str] = None,
    views: Optional[Views | str] = None,
    fast: bool = False,
) -> Config:
    """``cfg`` with ``eval.sampler`` / ``steps`` / ``samples`` / ``views`` replaced where given
    (the ``--sampler``, ``--steps``, ``--samples`` and ``--views`` options), checked like any
    config value. ``fast`` first sets :data:`~twostream_das.config.FAST_SAMPLING` (``--fast``);
    the values given explicitly win over it.

    Raises:
        ConfigError: a value of the wrong type, out of range or naming no sampler, naming the
            key.
    """
    changes: dict[str, object] = dict(FAST_SAMPLING) if fast else {}
    given = {"sampler": sampler, "steps": steps, "samples": samples, "views": views}
    changes.update({k: v for k, v in given.items() if v is not None})
    if not changes:
        return cfg
    for key, kind in (("sampler", str), ("steps", int), ("samples", int)):
        value = changes.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise ConfigError(f"eval.{key} = {value!r} is invalid; expected {kind.__name__}")
    for key, value in changes.items():  # views, and any other choice FAST_SAMPLING sets
        current = getattr(cfg.eval, key)
        if isinstance(current, enum.Enum):
            changes[key] = _choice(type(current), key, value)
    out = replace(cfg, eval=replace(cfg.eval, **changes))  # type: ignore[arg-type]
    validate(out)
    make_sampler(out)  # an unknown eval.sampler, or steps it cannot take, stops here
    return out


def _choice(kind: type[enum.Enum], key: str, value: object) -> enum.Enum:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(
            f"eval.{key} = {value!r} is invalid; expected one of "
            f"{', '.join(str(v.value) for v in kind)}"
        ) from None


def load_model(path: str | Path, device: torch.device) -> LoadedModel:
    """Rebuild the model stored in checkpoint ``path`` (eval mode, on ``device``)."""
    ckpt = load_checkpoint(path)
    cfg = ckpt.to_config()
    model = MultiStreamModel.from_config(cfg, dict(ckpt.stream_dims), len(ckpt.label_names))
    load_weights(model, ckpt.weights, f"checkpoint {path}",
                 "expected the tensors of the network its stored config describes (was the "
                 "config inside the file edited?)")  # fmt: skip
    model.to(device).eval()
    return LoadedModel(model, cfg, ckpt)


def content_digest(features: Mapping[str, torch.Tensor]) -> str:
    """A hex digest of a view's features, stream by stream (names, shapes, dtypes and bytes).

    The DDIM noise of a view is seeded by this, not by the video's file name: the same features
    give the same prediction whatever the file is called. About 10 ms per GTEA video.
    """
    h = hashlib.blake2b(digest_size=16)
    for stream in sorted(features):
        x = features[stream].detach().to("cpu").contiguous()
        h.update(f"{stream}|{tuple(x.shape)}|{x.dtype}|".encode())
        h.update(x.numpy().tobytes())
    return h.hexdigest()


def view_generators(
    seed: int, view: View, streams: Sequence[str], samples: int
) -> dict[str, list[torch.Generator]]:
    """The DDIM noise generators of one offset view of one video: stream -> K generators, one
    per (view, stream, sample), each seeded from ``(seed, digest of the view's features, offset,
    stream, k)``, so no stream or sample shares a generator and a video's draws do not depend on
    its file name.

    CPU generators on every device: the model draws on ``generator.device`` and moves the noise,
    so a video gets the same noise on CPU and GPU.
    """
    digest = content_digest(view.features)
    return {
        s: [make_generator(derive_seed(seed, "ddim", digest, view.offset, s, k))
            for k in range(samples)]
        for s in streams
    }  # fmt: skip


def predict_probabilities(
    model: MultiStreamModel,
    videos: Sequence[Video],
    cfg: Config,
    device: torch.device,
    progress: bool = False,
    desc: str = "predict",
    joint: Optional[JointFusion] = None,
    separate: bool = True,
) -> Iterator[VideoProbs]:
    """Per-stream probabilities of every video (:class:`VideoProbs`: the offset views averaged
    at the subsampled rate), in the order of ``videos``; with ``joint`` (fusion inside the
    sampler) also the joint samples' fused probabilities, from the same generators. Without
    ``separate`` the streams are not sampled alone (the videos' per-stream dicts are empty:
    for a caller that has them already).

    Offset views of all videos (and all streams, and ``eval.samples`` samples of each) are
    batched together (:func:`batch_plan`: ``eval.batch_size``), grouped
    by length (see :func:`_length_batches`); a video's result does not depend on its batch,
    and videos are yielded in the order of ``videos``, each as soon as all its views are done.
    """
    rate = cfg.dataset.sample_rate
    was_training = model.training
    model.eval()
    pending: dict[int, list[dict[str, dict[str, np.ndarray]]]] = {}  # video -> views
    total_views: dict[int, int] = {}  # video index -> views it has
    next_to_yield = 0
    bar = tqdm(total=len(videos), desc=desc, unit="video", disable=not progress, leave=False)
    try:
        batches = _length_batches(_views(videos, cfg, total_views), batch_plan(cfg, device))
        for chunk in batches:
            outs = _predict_views(model, [s for _, s in chunk], cfg, device, joint, separate)
            for (index, _), view in zip(chunk, outs, strict=True):
                pending.setdefault(index, []).append(view)  # offsets 0, 1, ... in order
            while len(pending.get(next_to_yield, ())) == total_views.get(next_to_yield):
                video = videos[next_to_yield]
                views = pending.pop(next_to_yield)  # offsets 0, 1, ... in order
                bar.update(1)
                samples = _average_views(views, "samples")  # stream -> (K, C, T_s)
                paths = _average_views(views, "sample_trajectories")  # stream -> (K, C, T_s)
                fused = _average_views(views, "joint") if joint is not None else {}
                yield VideoProbs(
                    video.name,
                    {s: p.mean(axis=0) for s, p in samples.items()},
                    video.labels,
                    samples,
                    {s: p.mean(axis=0) for s, p in paths.items()},
                    rate,
                    video.num_frames,
                    paths,
                    fused.get("samples"),
                    fused.get("trajectories"),
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
    sample_rate: int = 1,
    num_frames: Optional[int] = None,
    joint: Optional[np.ndarray] = None,
) -> np.ndarray:
    """The fused, post-processed labels (T,) of :func:`decide` alone (what a search scores)."""
    fused = _fused(probs, weights, method) if joint is None else joint
    return _labels(fused, post, sample_rate, num_frames)


def _fused(
    probs: Mapping[str, np.ndarray], weights: Mapping[str, float], method: Optional[FusionMethod]
) -> np.ndarray:
    """stream -> (C, T_s) fused into one float32 (C, T_s)."""
    return np.asarray(fuse(probs, weights, method), dtype=np.float32)


def _labels(
    probs: np.ndarray, post: PostprocessChoice, sample_rate: int, num_frames: Optional[int]
) -> np.ndarray:
    """(C, T_s) probabilities -> (T,) int64 full-rate labels after ``post``."""
    return np.asarray(
        postprocess(probs, post.kind, post.window, sample_rate, num_frames), dtype=np.int64
    )


def decide(
    probs: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    post: PostprocessChoice,
    method: Optional[FusionMethod] = None,
    sample_rate: int = 1,
    num_frames: Optional[int] = None,
    joint: Optional[np.ndarray] = None,
) -> Decision:
    """Fuse per-stream probabilities ``(C, T_s)`` with ``weights`` (and ``method``: rule and
    temperatures; None = the paper's weighted sum) and post-process to labels. The streams'
    own labels come from their probabilities as given (a temperature moves no argmax).

    Args:
        probs: stream -> (C, T_s), at the subsampled rate when ``sample_rate`` > 1
            (:attr:`VideoProbs.probs`).
        sample_rate, num_frames: r and the full-rate length T (None: T_s, only at r = 1).
        joint: (C, T_s) the fused probabilities when the fusion happened inside the sampler
            (:meth:`VideoProbs.joint_fused`); then ``weights`` and ``method`` are not applied.

    Returns:
        :class:`Decision` with full-rate labels, fused and per stream, all through
        :func:`~twostream_das.prediction.postprocess.postprocess`.
    """
    fused = _fused(probs, weights, method) if joint is None else joint  # (C, T_s)
    labels = _labels(fused, post, sample_rate, num_frames)
    stream_labels = {s: _labels(p, post, sample_rate, num_frames) for s, p in probs.items()}
    return Decision(fused, labels, stream_labels, sample_rate)


def decide_video(
    video: VideoProbs,
    weights: Mapping[str, float],
    post: PostprocessChoice,
    method: Optional[FusionMethod] = None,
    fusion_input: FusionInput = FusionInput.FINAL,
) -> Decision:
    """:func:`decide` on what one video's streams hand to the fusion (``fusion_input``:
    :meth:`VideoProbs.for_fusion`), averaged over its views, at its sample rate."""
    probs, joint = video.for_fusion(fusion_input), video.joint_fused(fusion_input)
    return decide(probs, weights, post, method, video.sample_rate, video.num_frames, joint)


def video_fused_labels(
    video: VideoProbs,
    weights: Mapping[str, float],
    post: PostprocessChoice,
    method: Optional[FusionMethod] = None,
    fusion_input: FusionInput = FusionInput.FINAL,
) -> np.ndarray:
    """:func:`fused_labels` on one video at its sample rate: (T,) full-rate labels."""
    probs, joint = video.for_fusion(fusion_input), video.joint_fused(fusion_input)
    return fused_labels(
        probs, weights, post, method, video.sample_rate, video.num_frames, joint
    )


def predict(
    model: MultiStreamModel,
    videos: Sequence[Video],
    cfg: Config,
    weights: Mapping[str, float],
    post: PostprocessChoice,
    device: torch.device,
    progress: bool = False,
    desc: str = "predict",
    method: Optional[FusionMethod] = None,
) -> Iterator[VideoPrediction]:
    """The full path for every video: probabilities, fusion (inside the sampler when
    ``fusion.sampling = joint``), post-processing, labels."""
    joint = joint_fusion(cfg, model.stream_names, weights, method)
    for video in predict_probabilities(model, videos, cfg, device, progress, desc, joint):
        yield VideoPrediction(
            video, decide_video(video, weights, post, method, cfg.fusion.input)
        )


def joint_fusion(
    cfg: Config,
    streams: Sequence[str],
    weights: Mapping[str, float],
    method: Optional[FusionMethod] = None,
) -> Optional[JointFusion]:
    """The consensus of ``fusion.sampling = joint`` with these weights; None when the streams
    are sampled separately (the paper's late fusion) or there is only one."""
    if cfg.fusion.sampling is not FusionSampling.JOINT or len(streams) < 2:
        return None
    return JointFusion(tuple(streams), dict(weights), method or FusionMethod())


# ----------------------------------------------------------------------------- helpers


def _views(
    videos: Sequence[Video], cfg: Config, counts: dict[int, int]
) -> Iterator[tuple[int, View]]:
    """Offset views of every video, in order; records each video's view count in ``counts``."""
    for index, video in enumerate(videos):
        views = offset_views(
            video, cfg.dataset.sample_rate, cfg.dataset.boundary_sigma, cfg.eval.views
        )
        counts[index] = len(views)
        yield from ((index, view) for view in views)


def _average_views(
    views: Sequence[Mapping[str, Mapping[str, np.ndarray]]], key: str
) -> dict[str, np.ndarray]:
    """stream -> the offset views' ``view[key][stream]`` (..., T_o) cropped to the shortest and
    averaged (:func:`~twostream_das.data.temporal.average_views`)."""
    return {s: average_views([v[key][s] for v in views]) for s in views[0][key]}


class BatchPlan(NamedTuple):
    """How views are batched: at most ``views`` per batch and, when ``frames`` is set, at most
    ``frames`` padded frames per batch (views x the longest view's frames; a longer view goes
    alone)."""

    views: int
    frames: Optional[int] = None


def batch_plan(cfg: Config, device: torch.device) -> BatchPlan:
    """``eval.batch_size`` views per batch; null: up to :data:`~.config.EVAL_CPU_PASS_FRAMES`
    padded frames per batch on a CPU (however many views that is), and
    :data:`~.config.EVAL_ACCELERATOR_BATCH` views elsewhere."""
    if cfg.eval.batch_size is not None:
        return BatchPlan(cfg.eval.batch_size)
    if device.type == "cpu":
        return BatchPlan(EVAL_CPU_PASS_FRAMES, EVAL_CPU_PASS_FRAMES)
    return BatchPlan(EVAL_ACCELERATOR_BATCH)


def samples_per_pass(
    cfg: Config, device: torch.device, views: int = 1, frames: int = EVAL_CPU_PASS_FRAMES
) -> Optional[int]:
    """``eval.samples_per_pass``, with null resolved for a batch of ``views`` views padded to
    ``frames`` frames: on a CPU as many samples as keep the pass within
    :data:`~.config.EVAL_CPU_PASS_FRAMES` frames (at least 1), all the samples at once (None)
    elsewhere."""
    if cfg.eval.samples_per_pass is not None:
        return cfg.eval.samples_per_pass
    if device.type != "cpu":
        return None
    return max(1, EVAL_CPU_PASS_FRAMES // max(1, views * frames))


def _length_batches(
    items: Iterable[tuple[int, View]], plan: BatchPlan
) -> Iterator[list[tuple[int, View]]]:
    """Batches as ``plan`` says, grouped by length: the views of about ``GROUP_BATCHES``
    batches at a time (in video order), sorted longest first, so a batch pads little; memory
    stays bounded and videos are still yielded in order, a window at a time."""
    window: list[tuple[int, View]] = []
    frames = 0
    for item in items:
        window.append(item)
        frames += item[1].num_frames
        full = plan.frames is not None and frames >= plan.frames * GROUP_BATCHES
        if full or len(window) == plan.views * GROUP_BATCHES:
            yield from _sorted_batches(window, plan)
            window, frames = [], 0
    yield from _sorted_batches(window, plan)


def _sorted_batches(
    items: list[tuple[int, View]], plan: BatchPlan
) -> Iterator[list[tuple[int, View]]]:
    """``items`` longest first, cut into batches of at most ``plan.views`` views and (when set)
    ``plan.frames`` padded frames; ties stay in video order."""
    ordered = sorted(items, key=lambda item: -item[1].num_frames)  # stable
    batch: list[tuple[int, View]] = []
    for item in ordered:
        if batch:
            padded = (len(batch) + 1) * batch[0][1].num_frames  # with item, longest first
            if len(batch) == plan.views or (plan.frames is not None and padded > plan.frames):
                yield batch
                batch = []
        batch.append(item)
    if batch:
        yield batch


@torch.inference_mode()
def _predict_views(
    model: MultiStreamModel,
    views: list[View],
    cfg: Config,
    device: torch.device,
    joint: Optional[JointFusion] = None,
    separate: bool = True,
) -> list[dict[str, dict[str, np.ndarray]]]:
    """All streams on a batch of views, K samples each (``eval.samples``, ``eval.steps``).

    Returns, per view: ``{"samples": stream -> (K, C, T_view), "sample_trajectories":
    stream -> (K, C, T_view)}`` float32 (each sample's final x0 probabilities, and its x0
    probabilities averaged over the DDIM steps); with ``joint`` also ``"joint": {"samples":
    (K, C, T_view), "trajectories": (K, C, T_view)}``, the joint samples' fused probabilities
    (each (view, stream, sample) drawing from a generator seeded as in the separate run).
    Without ``separate`` the per-stream dicts are empty.
    """
    batch = collate(views).to(device)
    streams = model.stream_names
    lengths = batch.mask.sum(dim=1).tolist()  # (B,)
    final: dict[str, np.ndarray] = {}  # stream or "joint" -> (K, B, C, T)
    path: dict[str, np.ndarray] = {}
    encoded = None
    if separate and joint is not None:  # two runs on one batch: the encoders once
        with autocast(device, inference_dtype(device, cfg.eval.precision)):
            encoded = model.encode(batch.features, batch.mask, make_sampler(cfg),
                                   choose_strategy(model))  # fmt: skip
    if separate:
        out = _sample_views(model, batch, views, cfg, device, encoded=encoded)
        final = {s: r.probs.float().cpu().numpy() for s, r in out.items()}
        path = {s: r.trajectory_mean.float().cpu().numpy() for s, r in out.items()}
    if joint is not None:
        fused = _sample_views(model, batch, views, cfg, device, joint, encoded)["joint"]
        final["joint"] = fused.probs.float().cpu().numpy()
        path["joint"] = fused.trajectory_mean.float().cpu().numpy()
    results = []
    for b, n in enumerate(lengths):
        result = {
            "samples": {s: final[s][:, b, :, : int(n)] for s in streams if separate},
            "sample_trajectories": {s: path[s][:, b, :, : int(n)] for s in streams if separate},
        }
        if joint is not None:
            result["joint"] = {"samples": final["joint"][:, b, :, : int(n)],
                             "trajectories": path["joint"][:, b, :, : int(n)]}
        results.append(result)
    return results


def _sample_views(
    model: MultiStreamModel,
    batch: Batch,
    views: list[View],
    cfg: Config,
    device: torch.device,
    joint: Optional[JointFusion] = None,
    encoded: Optional[StreamDenoisers] = None,
) -> dict[str, SampleResult]:
    """K DDIM samples of every stream on a batch of views (stream -> (K, B, C, T)); with
    ``joint``, the joint samples instead (``"joint"`` -> (K, B, C, T)). Every (view, stream,
    sample) draws from its own generator (:func:`view_generators`), the same in both;
    ``encoded``: the batch's encoders, run once for both (:meth:`MultiStreamModel.encode`)."""
    count, streams = cfg.eval.samples, model.stream_names
    per_view = [view_generators(cfg.eval.seed, v, streams, count) for v in views]
    generators = {  # stream -> K * B, sample-major
        s: [gens[s][k] for k in range(count) for gens in per_view] for s in streams
    }
    rows = len(views) * (len(streams) if joint is not None else 1)
    per_pass = samples_per_pass(cfg, device, rows, batch.mask.shape[1])
    strategy = choose_strategy(model)  # the streams stacked where they can be
    with autocast(device, inference_dtype(device, cfg.eval.precision)):
        if joint is None:
            return model.sample(
                batch.features, batch.mask, generators, make_sampler(cfg), count, per_pass,
                strategy, encoded,
            )  # fmt: skip
        return {"joint": model.sample_joint(
            batch.features, batch.mask, generators, joint, make_sampler(cfg), count, per_pass,
            strategy, encoded,
        )}  # fmt: skip
