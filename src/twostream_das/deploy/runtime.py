"""Predict with an exported folder on numpy + onnxruntime alone (no torch import).

    model = OnnxModel.load("exported/")                   # checks hashes and versions
    result = model.predict_video({"rgb": (D, T), "flow": (D, T)})
    result.labels, result.probs, result.segments          # (T,), (C, T), [SegmentRecord]

    predict_files("exported/", {"rgb": "feats/rgb", "flow": "feats/flow"}, "out/")

The path is ``predict``'s (:mod:`twostream_das.prediction.inference`): the temporal offset views
(every one, or the middle one), the standardisation, each stream's encoder once, the decoder's
context once, then the loop of the sampler chosen (:meth:`OnnxModel.sampling`: ``--sampler``,
``--steps``, ``--samples``, ``--views``, ``--fast``) with every stream stepping together, K
samples per view as rows; the views averaged at the subsampled rate and over the samples;
fusion, post-processing, segments; the same files as ``twostream-das predict`` writes. The
noise: one numpy generator per (view, stream, sample), seeded from the same ``(seed, features
digest, offset, stream, k)`` as the PyTorch path's torch generators, so a prediction is
reproducible, but the numbers are numpy's: the same model gives the same probabilities as
PyTorch only given the same draws (:class:`.host.RecordedNoise`; the parity tests), and labels
that agree wherever the sampler's randomness does not decide.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np

from ..errors import ConfigError, DataError
from . import host, outputs
from .bundle import BundleError, Manifest, read_manifest

logger = logging.getLogger(__name__)

Consensus = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
"""The streams' x0 class probabilities at one step, stream -> (N, C, T), to what each stream's
update continues from (fusion inside the sampler); None: each stream its own."""


class Sampling(NamedTuple):
    """How a prediction samples: ``eval.sampler``, ``eval.steps``, ``eval.samples`` (K) and
    ``eval.views``, as exported or as overridden (:meth:`OnnxModel.sampling`)."""

    sampler: str
    steps: int
    samples: int
    views: str


class SampleResult(NamedTuple):
    """float32 (K, B, C, T): the final x0 probabilities and their mean over the steps."""

    probs: np.ndarray
    trajectory_mean: np.ndarray


@dataclass(frozen=True)
class VideoResult:
    """One video's prediction (the arrays ``predict`` writes, and what they come from).

    Attributes:
        name: the video.
        labels: (T,) int64 fused, post-processed labels at the full rate.
        stream_labels: stream -> (T,) int64, each stream's own, post-processed the same way.
        probs: (C, T) float32 fused probabilities at the full rate, every frame summing to 1
            (``<video>_probs.npy``).
        stream_probs: stream -> (C, T_s) what the stream handed to fusion (views and samples
            averaged, at the subsampled rate).
        samples: stream -> (K, C, T_s) each sample's fusion input.
        uncertainty: (T,) float32 mutual information of the K samples, or None (K = 1).
        segments: the segments of ``labels`` (:class:`.outputs.SegmentRecord`).
    """

    name: str
    labels: np.ndarray
    stream_labels: dict[str, np.ndarray]
    probs: np.ndarray
    stream_probs: dict[str, np.ndarray]
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    uncertainty: Optional[np.ndarray] = None
    segments: list[outputs.SegmentRecord] = field(default_factory=list)


class OnnxModel:
    """An exported folder on onnxruntime (build with :meth:`load`)."""

    def __init__(self, manifest: Manifest, sessions: dict[str, dict[str, Any]]) -> None:
        self.manifest = manifest
        self.sessions = sessions  # stream -> role -> onnxruntime.InferenceSession

    @classmethod
    def load(
        cls, folder: str | Path, threads: Optional[int] = None, verify_hashes: bool = True
    ) -> OnnxModel:
        """Read and check ``folder`` (:func:`.bundle.read_manifest`) and open its graphs.

        Args:
            threads: onnxruntime's intra-op threads (None: its default, every core).

        Raises:
            BundleError: a missing, altered or other-version folder, or a graph onnxruntime
                cannot open.
        """
        import onnxruntime as ort

        manifest = read_manifest(folder, verify_hashes)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or 0)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.add_session_config_entry(STOP_SPINNING_AFTER_RUN, "1")
        _use_exact_arena(ort, options)
        sessions: dict[str, dict[str, Any]] = {}
        for stream in manifest.streams:
            sessions[stream.name] = {}
            for role, path in stream.graphs.items():
                try:
                    sessions[stream.name][role] = ort.InferenceSession(
                        str(path), options, providers=["CPUExecutionProvider"]
                    )
                except Exception as err:  # onnxruntime's Fail / InvalidGraph / ...
                    raise BundleError(
                        f"{path}: onnxruntime {ort.__version__} cannot open it "
                        f"({str(err).splitlines()[0] if str(err) else type(err).__name__})"
                    ) from None
        return cls(manifest, sessions)

    # ------------------------------------------------------------------------- properties

    @property
    def stream_names(self) -> list[str]:
        return self.manifest.stream_names

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    @property
    def num_classes(self) -> int:
        return len(self.manifest.classes)

    def sampler(self, steps: Optional[int] = None, name: Optional[str] = None) -> host.Sampler:
        """The sampler ``name`` (default: the manifest's) over the exported schedule and
        timestep spacing, with ``steps`` steps (default: the exported number).

        Raises:
            ConfigError: a sampler this runtime does not implement (:data:`.host.SAMPLERS`).
            ValueError: ``steps`` outside 1 .. the schedule's N.
        """
        spec = self.manifest.sampler
        name = name or spec["name"]
        if name not in host.SAMPLERS:
            raise ConfigError(
                f"sampler {name!r} is not implemented by the ONNX runtime; expected one of "
                f"{', '.join(host.SAMPLERS)}"
            )
        sampler = host.SAMPLERS[name](spec)
        sampler.set_timesteps(int(spec["num_inference_steps"] if steps is None else steps))
        return sampler

    def sampling(
        self,
        sampler: Optional[str] = None,
        steps: Optional[int] = None,
        samples: Optional[int] = None,
        views: Optional[str] = None,
        fast: bool = False,
    ) -> Sampling:
        """The exported sampling (``eval.sampler`` / ``steps`` / ``samples`` / ``views``) with
        the values given replaced, as ``predict``'s ``--sampler``, ``--steps``, ``--samples``,
        ``--views`` and ``--fast`` replace them (``fast`` first sets what the package's
        ``FAST_SAMPLING`` set when the folder was exported; the values given win), checked.

        Raises:
            ConfigError: a sampler the runtime lacks, steps it cannot take, samples < 1, an
                unknown view choice, or ``fast`` on a folder exported before it was recorded.
        """
        spec = self.manifest.inference
        chosen: dict[str, Any] = {
            "sampler": self.manifest.sampler["name"],
            "steps": int(self.manifest.sampler["num_inference_steps"]),
            "samples": int(spec["samples"]),
            "views": spec.get("views", "all"),
        }
        if fast:
            if "fast" not in spec:
                raise ConfigError(
                    f"--fast: {self.manifest.folder} was exported before the fast setting was "
                    "recorded in it; re-export the checkpoint, or give --sampler, --steps, "
                    "--samples and --views"
                )
            chosen.update(spec["fast"])
        given = {"sampler": sampler, "steps": steps, "samples": samples, "views": views}
        chosen.update({k: v for k, v in given.items() if v is not None})
        return self._checked(Sampling(**chosen))

    def _checked(self, choice: Sampling) -> Sampling:
        """``choice`` if this runtime can run it (ConfigError naming the option otherwise)."""
        for key in ("steps", "samples"):
            value = getattr(choice, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{key} {value!r} is invalid; expected an int >= 1")
        if choice.views not in host.VIEWS:
            raise ConfigError(
                f"--views {choice.views!r} is invalid; expected one of {', '.join(host.VIEWS)}"
            )
        sampler = self.sampler(1, choice.sampler)  # ConfigError: a sampler the runtime lacks
        try:
            sampler.set_timesteps(choice.steps)
        except ValueError as err:
            raise ConfigError(f"--steps {choice.steps}: {err}") from None
        return choice

    # ------------------------------------------------------------------------- networks

    def standardized(self, stream: str, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` per channel (0 on padding) where the model was trained so
        (:class:`twostream_das.model.standardize.FeatureStandardizer`); x (B, D, T) float32."""
        entry = next(s for s in self.manifest.streams if s.name == stream)
        if entry.mean is None or entry.std is None:
            return x
        mean = np.asarray(entry.mean, np.float32)[None, :, None]
        std = np.asarray(entry.std, np.float32)[None, :, None]
        return np.where(mask[:, None, :], (x - mean) / std, np.float32(0.0)).astype(np.float32)

    def encode(self, stream: str, x: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        """The decoder's context of ``stream`` for features x (B, D, T) (standardised) and
        mask (B, T): per block (B, 3F, T)."""
        roles = self.sessions[stream]
        _, cond = roles["encoder"].run(None, {"features": x, "mask": mask})  # (B, Dc, T)
        return roles["decoder_context"].run(None, {"cond": cond})

    def contexts(
        self, features: Mapping[str, np.ndarray], mask: np.ndarray
    ) -> dict[str, list[np.ndarray]]:
        """Every stream's decoder context for features (stream -> (B, D_s, T) as read) and mask
        (B, T): standardised, encoded; per block (B, 3F, T). What :meth:`sample` computes once
        per batch (``contexts=``: shared by two runs on one batch)."""
        mask = np.ascontiguousarray(mask, dtype=bool)
        out = {}
        for s in self.stream_names:
            x = self.standardized(s, np.asarray(features[s], np.float32), mask)
            out[s] = self.encode(s, np.ascontiguousarray(x), mask)
        return out

    def denoise(
        self, stream: str, x_in: np.ndarray, t: int, mask: np.ndarray, context: Sequence[np.ndarray]
    ) -> np.ndarray:
        """x0 logits (N, C, T) of the decoder of ``stream`` at step t."""
        feeds = {"x": x_in, "t": np.full(x_in.shape[0], t, np.int64), "mask": mask}
        feeds.update({f"context_{i}": c for i, c in enumerate(context)})
        return self.sessions[stream]["decoder"].run(None, feeds)[0]

    # ------------------------------------------------------------------------- sampling

    def sample(
        self,
        features: Mapping[str, np.ndarray],
        mask: np.ndarray,
        noise: Mapping[str, host.NoiseSource],
        steps: Optional[int] = None,
        samples: int = 1,
        consensus: Optional[Consensus] = None,
        sampler_name: Optional[str] = None,
        contexts: Optional[Mapping[str, Sequence[np.ndarray]]] = None,
    ) -> dict[str, SampleResult]:
        """K samples per video and stream, the streams stepping together (the PyTorch path's
        :meth:`twostream_das.model.multi_stream.MultiStreamModel.sample`).

        Args:
            features: stream -> (B, D_s, T) as read (standardised here), 0 on padding.
            mask: (B, T) bool, True = real frame.
            noise: stream -> the draws of its K * B rows (sample-major: row k * B + b), e.g.
                :class:`.host.RowNoise` or :class:`.host.RecordedNoise`.
            steps: sampler steps (default: the exported number).
            samples: K.
            consensus: fusion inside the sampler (:data:`Consensus`); None = none.
            sampler_name: the sampler (:data:`.host.SAMPLERS`; default: the exported one).
            contexts: :meth:`contexts` of these features and mask, to share with another run
                on the same batch (None: computed here).

        Returns:
            stream -> :class:`SampleResult` of (K, B, C, T) float32.
        """
        names = self.stream_names
        if set(features) != set(names) or set(noise) != set(names):
            raise ValueError(
                f"need features and noise for the streams {names}; got {sorted(features)} and "
                f"{sorted(noise)}"
            )
        mask = np.ascontiguousarray(mask, dtype=bool)
        batch, frames = mask.shape
        rows = samples * batch
        lengths = [int(n) for n in mask.sum(axis=1)] * samples  # (K * B,)
        row_mask = np.tile(mask, (samples, 1))  # (K * B, T)
        contexts = contexts or self.contexts(features, mask)  # stream -> per block (B, 3F, T)
        context = {
            s: list(c) if samples == 1 else [np.tile(x, (samples, 1, 1)) for x in c]
            for s, c in contexts.items()
        }  # per block (K * B, 3F, T)
        sampler = self.sampler(steps, sampler_name)
        scale = float(self.manifest.sampler["signal_scale"])
        shape = (rows, self.num_classes, frames)
        x_t = {s: sampler.initial_noise(shape, noise[s], lengths) for s in names}
        total = {s: np.zeros(shape, np.float32) for s in names}
        probs: dict[str, np.ndarray] = {}
        for t in sampler.timesteps:
            for s in names:  # every stream's x0 estimate at this step
                logits = self.denoise(s, host.model_input(x_t[s], scale), t, row_mask, context[s])
                probs[s] = host.softmax(logits, axis=1)  # (N, C, T)
            if consensus is not None:  # what every stream continues from
                probs = dict(consensus(probs))
            for s in names:
                total[s] += probs[s]
                x0 = host.probs_to_x0(probs[s], scale)
                x_t[s] = sampler.step(x0, t, x_t[s], noise[s], lengths)
        count = len(sampler.timesteps)
        out_shape = (samples, batch, self.num_classes, frames)
        return {
            s: SampleResult(
                probs[s].astype(np.float32).reshape(out_shape),
                (total[s] / np.float32(count)).reshape(out_shape),
            )
            for s in names
        }

    def joint_consensus(self) -> Optional[Consensus]:
        """The consensus of fusion inside the sampler (manifest ``fusion.sampling = joint``):
        every stream continues from the streams' fused x0 probabilities (the weights, rule and
        temperatures of late fusion, rescaled to probabilities); None when the streams sample
        separately or there is one."""
        fusion = self.manifest.fusion
        if fusion.get("sampling", "separate") != "joint" or len(self.stream_names) < 2:
            return None

        def consensus(probs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            fused = host.fuse_normalized(
                probs, fusion["weights"], fusion["rule"], fusion["temperatures"],
                fusion["prob_floor"],
            ).astype(np.float32)  # fmt: skip
            return {s: fused for s in probs}

        return consensus

    # ------------------------------------------------------------------------- one video

    def predict_video(
        self,
        features: Mapping[str, np.ndarray],
        name: str = "video",
        steps: Optional[int] = None,
        samples: Optional[int] = None,
        seed: Optional[int] = None,
        fps: Optional[float] = None,
        *,
        sampler: Optional[str] = None,
        views: Optional[str] = None,
        fast: bool = False,
    ) -> VideoResult:
        """``predict``'s path for one video (module docstring).

        Args:
            features: stream -> (D_s, T) float32 features (every stream T frames).
            steps, samples, seed: the sampler's steps, K and the noise seed (default: the
                exported ``eval.steps`` / ``eval.samples`` / ``eval.seed``).
            fps: frame rate for the segments' seconds (default: the exported one).
            sampler, views, fast: the sampler (``ddim``, ``dpmpp_2m``, ``dpmpp_2m_sde``), the
                offset views (``all`` or ``middle``: offset r // 2 alone) and the fast setting,
                as ``predict`` takes them (:meth:`sampling`; default: the exported ones).

        Raises:
            DataError: a stream missing or of another dimension, lengths that differ, NaN.
            ConfigError: a sampling option the runtime cannot run (:meth:`sampling`).
        """
        feats = self.check_features(features, name)
        choice = self.sampling(sampler, steps, samples, views, fast)
        spec = self.manifest.inference
        rate = int(spec["sample_rate"])
        count = choice.samples
        seed = int(spec["seed"] if seed is None else seed)
        frames = next(iter(feats.values())).shape[1]
        joint = self.joint_consensus()
        views_out, joint_views = [], []
        for offset in host.view_offsets(frames, rate, choice.views):
            view = {s: np.ascontiguousarray(f[:, offset::rate]) for s, f in feats.items()}
            mask = np.ones((1, next(iter(view.values())).shape[1]), dtype=bool)
            batch = {s: v[None] for s, v in view.items()}

            def noise(view=view, offset=offset) -> dict[str, host.NoiseSource]:
                gens = host.view_generators(seed, view, offset, self.stream_names, count)
                return {s: host.RowNoise(g) for s, g in gens.items()}

            contexts = self.contexts(batch, mask)  # the encoders once for both runs
            views_out.append(self.sample(batch, mask, noise(), choice.steps, count,
                                         sampler_name=choice.sampler,
                                         contexts=contexts))  # fmt: skip
            if joint is not None:  # the same seeds, the streams fused at every step
                out = self.sample(batch, mask, noise(), choice.steps, count, joint,
                                  choice.sampler, contexts)  # fmt: skip
                joint_views.append(out[self.stream_names[0]])  # every stream holds it
        trajectory = self.manifest.fusion["input"] == "trajectory"

        def averaged(results: list[SampleResult]) -> np.ndarray:  # (K, C, T_s)
            return host.average_views(
                [(r.trajectory_mean if trajectory else r.probs)[:, 0] for r in results]
            )

        per_sample = {s: averaged([v[s] for v in views_out]) for s in feats}
        joint_samples = averaged(joint_views) if joint_views else None
        return self.decide(name, per_sample, frames, fps, joint_samples)

    def decide(
        self,
        name: str,
        per_sample: Mapping[str, np.ndarray],
        frames: int,
        fps: Optional[float] = None,
        joint_samples: Optional[np.ndarray] = None,
    ) -> VideoResult:
        """Fusion, post-processing and segments of one video from each sample's fusion input
        (stream -> (K, C, T_s)), as :func:`twostream_das.prediction.inference.decide_video` and
        ``predict``'s writer do; with fusion inside the sampler, ``joint_samples`` (K, C, T_s)
        are the joint samples' fused probabilities and their mean is the fused prediction."""
        fusion, post = self.manifest.fusion, self.manifest.postprocess
        rate = int(self.manifest.inference["sample_rate"])
        probs = {s: p.mean(axis=0) for s, p in per_sample.items()}  # (C, T_s)

        def fused(p: Mapping[str, np.ndarray]) -> np.ndarray:
            return np.asarray(
                host.fuse(p, fusion["weights"], fusion["rule"], fusion["temperatures"],
                          fusion["prob_floor"]),
                dtype=np.float32,
            )  # fmt: skip

        def labels(p: np.ndarray) -> np.ndarray:
            out = host.postprocess(p, post["kind"], int(post["window"]), rate, frames)
            return np.asarray(out, dtype=np.int64)

        if joint_samples is None:
            fused_view = fused(probs)  # (C, T_s)
            fused_k = host.normalize_frames(fused(per_sample))  # (K, C, T_s)
        else:
            fused_view = joint_samples.mean(axis=0)
            fused_k = host.normalize_frames(joint_samples)
        fused_labels = labels(fused_view)
        stream_labels = {s: labels(p) for s, p in probs.items()}
        full = host.normalize_frames(host.restore_full_rate(fused_view, rate, frames))  # (C, T)
        uncertainty = None
        if fused_k.shape[0] >= 2:
            mi = host.mutual_information(fused_k)
            uncertainty = host.restore_full_rate(mi, rate, frames)
        fps = float(self.manifest.data["fps"] if fps is None else fps)
        segs = outputs.segment_records(fused_labels, full, self.classes, fps, uncertainty)
        return VideoResult(
            name, fused_labels, stream_labels, full, probs, dict(per_sample), uncertainty, segs
        )

    def check_features(
        self, features: Mapping[str, np.ndarray], name: str = "video"
    ) -> dict[str, np.ndarray]:
        """stream -> (D_s, T) float32, checked: the model's streams, their dimensions, one
        length, finite values.

        Raises:
            DataError: naming the video, the stream, the value and what was expected.
        """
        names = self.stream_names
        if set(features) != set(names):
            raise DataError(
                f"video {name}: features for streams {sorted(features)}; the exported model's "
                f"streams are {names}"
            )
        out, lengths = {}, set()
        for entry in self.manifest.streams:
            x = np.asarray(features[entry.name])
            if x.ndim != 2 or x.shape[0] != entry.dim:
                raise DataError(
                    f"video {name}: {entry.name} features have shape {x.shape}; expected "
                    f"({entry.dim}, T), the dimension the model was exported with"
                )
            if x.shape[1] < 1 or not np.isfinite(x).all():
                raise DataError(
                    f"video {name}: {entry.name} features have no frames or hold NaN/inf"
                )
            out[entry.name] = np.ascontiguousarray(x, dtype=np.float32)
            lengths.add(x.shape[1])
        if len(lengths) > 1:
            raise DataError(f"video {name}: the streams have different lengths {sorted(lengths)}")
        return out


STOP_SPINNING_AFTER_RUN = "session.force_spinning_stop"
"""onnxruntime's session option whose value "1" sends a session's intra-op threads to sleep when
its ``run`` returns. Each of the runtime's sessions (three per stream) has its own pool, and the
runtime calls them in turn: by default the pool of the session that just ran keeps spinning
while the next one works. At 2 threads that made a GTEA-sized video 1.8x slower than at 1
thread (1.07 s against 0.59 s at T = 1500); with the pools sleeping after each run: 0.68 s
(Breakfast at T = 5000: 10.7 s spinning, 10.4 s sleeping, 14.4 s at 1 thread). One process-wide
pool (``onnxruntime.set_global_thread_pool_sizes``) was as fast at GTEA and took 9.4 s at
Breakfast, but it is a setting of the process: every other onnxruntime session the caller's
process opens afterwards must use it, or fails to open."""

ARENA_EXTEND_SAME_AS_REQUESTED = 1
"""onnxruntime's ``arena_extend_strategy`` kSameAsRequested (its default, kNextPowerOfTwo,
doubles each new chunk: at T = 100,000 the arena held 1.5 GB more than the graphs' tensors)."""


def _use_exact_arena(ort: Any, options: Any) -> None:
    """Sessions of ``options`` allocate from one shared CPU arena that grows by exactly what
    is asked (:data:`ARENA_EXTEND_SAME_AS_REQUESTED`), registered once per process: the
    arena's reuse between runs, without its doubling."""
    global _ARENA_REGISTERED
    if not _ARENA_REGISTERED:
        cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                ort.OrtMemType.DEFAULT)  # fmt: skip
        config = ort.OrtArenaCfg({"arena_extend_strategy": ARENA_EXTEND_SAME_AS_REQUESTED})
        ort.create_and_register_allocator(cpu, config)
        _ARENA_REGISTERED = True
    options.add_session_config_entry("session.use_env_allocators", "1")


_ARENA_REGISTERED = False


# ----------------------------------------------------------------------------- folders


def predict_files(
    folder: str | Path,
    features: Mapping[str, str | Path],
    out: str | Path,
    fps: Optional[float] = None,
    orientations: Optional[Mapping[str, Optional[str]]] = None,
    steps: Optional[int] = None,
    samples: Optional[int] = None,
    overwrite: bool = False,
    review_score: Optional[str] = None,
    threads: Optional[int] = None,
    plots: bool = False,
    model: Optional[OnnxModel] = None,
    sampler: Optional[str] = None,
    views: Optional[str] = None,
    fast: bool = False,
) -> dict[str, Any]:
    """``twostream-das predict --engine onnxruntime``: every video of ``features`` (stream ->
    ``.npy`` file or folder of them) into ``out``, the files ``predict`` writes
    (:mod:`.outputs`; ``<video>.png`` only with ``plots``, which needs matplotlib).
    ``sampler``, ``steps``, ``samples``, ``views`` and ``fast`` as ``predict`` takes them
    (:meth:`OnnxModel.sampling`), checked before any work.

    Returns the summary written to ``out/summary.json``.
    """
    if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps < float("inf")):
        raise DataError(f"--fps {fps!r} is invalid; expected a finite number > 0")
    model = model or OnnxModel.load(folder, threads)
    choice = model.sampling(sampler, steps, samples, views, fast)
    out = Path(out)
    outputs.prepare_output(out, overwrite)
    trained = float(model.manifest.data["fps"])
    written = []
    for name, paths in outputs.match_streams(features, model.stream_names):
        feats = outputs.read_video(model.manifest, name, paths, orientations or {})
        rate = outputs.video_rate(name, paths, fps, trained)
        result = model.predict_video(
            feats, name, choice.steps, choice.samples, fps=rate, sampler=choice.sampler,
            views=choice.views,
        )  # fmt: skip
        written.append(outputs.write_video(result, model.classes, out, rate, plots))
    summary = outputs.summary(
        str(folder), model.manifest, trained if fps is None else fps, choice, written
    )
    outputs.write_summary(out, summary, written, review_score or "max_prob")
    logger.info("predicted %d video(s) into %s", len(written), out)
    return summary


def available_threads() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
