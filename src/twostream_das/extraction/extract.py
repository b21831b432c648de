"""From video files to per-frame feature files: the extraction pipeline.

The video is decoded once; its frames go to every requested stream, batched through the network
on the chosen device. Decoding, optical flow and each network run in their own threads joined by
bounded queues (:mod:`.pipeline`), so they overlap; ``ExtractionSettings.overlap = False`` runs
one pass per stream instead, one stage after the other (the same features):

- ``i3d_rgb``: frame -> resize (``square`` 224x224 per METHOD.md section 8, or Kinetics short
  side 256 + centre crop 224) -> RGB in [-1, 1] -> 21-frame window centred on the frame (zeros
  beyond the ends) -> I3D RGB -> Mixed_5c averaged over time and space: 1024-d.
- ``i3d_flow``: resized frame -> grey -> TV-L1 flow to the next frame (the last frame repeats the
  previous flow) -> clip to +-20 px, divide by 20 -> same windows -> I3D FLOW: 1024-d.
- ``clip_rgb``: frame -> short side 224 (bicubic), centre crop, CLIP normalisation -> ViT-B/16
  class token after ``ln_post``: 768-d (Br-Prompt's features).

With ``ExtractionSettings.fps`` the decoded frames are first resampled to that rate by their
timestamps (:class:`.video.TimedFrames`), before the flow and every network, so a 30 fps phone
clip gives features at the 15 fps a GTEA model was trained on, and a variable-rate file gives
evenly spaced ones. Without it every decoded frame is kept.

Each stream is written as ``<out>/features_<stream>/<video>.npy`` (D, T) float32 with T the number
of (resampled) frames; with both I3D streams, also ``<out>/features/<video>.npy`` (2048, T), RGB
rows first (the standard layout, METHOD.md section 2). ``<out>/video_info/<video>.json`` records
the video's own rate, frame count and duration and the features' rate
(:class:`.video.VideoTiming`): feature column ``k`` is the video's time ``k / fps``. Re-running
skips complete files (see :mod:`.store`).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..atomic import atomic_save_npy
from ..distributed import barrier, local_device, rank_and_world
from ..errors import ConfigError, DataError
from ..runtime import resolve_device
from .flow import FLOW_BOUND, FlowFn, FlowMethod, clip_and_scale, iter_flow, make_flow_fn
from .i3d import FEATURE_DIM as I3D_DIM
from .i3d_weights import load_i3d
from .pipeline import Pipeline, StageClock
from .shards import rank_share
from .store import (
    is_complete,
    read_video_info,
    remove_stale_temps,
    write_manifest,
    write_video_info,
)
from .video import (
    ResizeMode,
    TimedFrames,
    VideoTiming,
    center_crop,
    list_videos,
    probe_video,
    resize_for_i3d,
    rgb_to_gray,
    rgb_to_unit_range,
    timed_frames,
)
from .vit import load_clip_visual, preprocess_clip
from .windows import iter_window_batches

logger = logging.getLogger(__name__)

COMBINED_FOLDER = "features"  # (2048, T): I3D RGB rows 0..1023, I3D FLOW rows 1024..2047
FLOW_PROBE_CALLS = 3  # TV-L1 calls timed before the duration estimate is logged


class FeatureStream(str, enum.Enum):
    I3D_RGB = "i3d_rgb"
    I3D_FLOW = "i3d_flow"
    CLIP_RGB = "clip_rgb"

    @property
    def folder(self) -> str:
        """Output folder of this stream, ``features_<stream>``."""
        return f"features_{self.value}"

    @property
    def modality(self) -> str:
        """What the stream sees, ``rgb`` or ``flow`` (the last part of its name)."""
        return self.value.rpartition("_")[2]


DEFAULT_STREAMS: tuple[FeatureStream, ...] = (FeatureStream.I3D_RGB, FeatureStream.I3D_FLOW)

WEIGHTS_ENV: dict[FeatureStream, str] = {
    FeatureStream.I3D_RGB: "TWOSTREAM_DAS_I3D_RGB_WEIGHTS",
    FeatureStream.I3D_FLOW: "TWOSTREAM_DAS_I3D_FLOW_WEIGHTS",
    FeatureStream.CLIP_RGB: "TWOSTREAM_DAS_CLIP_WEIGHTS",
}
"""Environment variables the CLI falls back to when a weights option is not given."""


def parse_streams(text: str | Iterable[str]) -> tuple[FeatureStream, ...]:
    """``"i3d_rgb,i3d_flow"`` (or a list) -> streams, in the given order, without repeats."""
    names = text.split(",") if isinstance(text, str) else list(text)
    streams: list[FeatureStream] = []
    for name in (n.strip() for n in names if n.strip()):
        try:
            stream = FeatureStream(name)
        except ValueError:
            choices = ", ".join(s.value for s in FeatureStream)
            raise ConfigError(f"unknown stream {name!r}; expected some of {choices}") from None
        if stream not in streams:
            streams.append(stream)
    if not streams:
        raise ConfigError("no stream given; expected some of i3d_rgb, i3d_flow, clip_rgb")
    return tuple(streams)


@dataclass(frozen=True)
class ExtractionSettings:
    """Every knob of the recipe, with the reference values as defaults."""

    window: int = 21  # frames per I3D window, centred on the frame (odd)
    image_size: int = 224  # I3D input side (tests use 32: the network is fully convolutional)
    resize: ResizeMode = ResizeMode.SQUARE  # METHOD.md section 8: whole frame to image_size^2
    flow_method: FlowMethod = FlowMethod.TVL1
    flow_bound: float = FLOW_BOUND  # flow clipped to +-bound pixels, then divided by it
    batch_size: int = 8  # I3D windows (or ViT frames) per forward pass
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun, cuda is cuda:LOCAL_RANK)
    overlap: bool = True  # decode, flow and the networks in threads (False: one after the other)
    queue_size: int = 16  # frames (or flow fields) a queue between two threads holds at most
    fps: Optional[float] = None  # resample to this rate by timestamps first (None: every frame)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", ResizeMode(self.resize))
        object.__setattr__(self, "flow_method", FlowMethod(self.flow_method))
        checks = [
            (self.window >= 1 and self.window % 2 == 1, "window", self.window, "odd and >= 1"),
            (self.image_size >= 8, "image_size", self.image_size, ">= 8"),
            (self.flow_bound > 0, "flow_bound", self.flow_bound, "> 0"),
            (self.batch_size >= 1, "batch_size", self.batch_size, ">= 1"),
            (self.queue_size >= 1, "queue_size", self.queue_size, ">= 1"),
            (self.fps is None or (isinstance(self.fps, (int, float)) and 0 < self.fps < 1e4),
             "fps", self.fps, "a number > 0 (frames per second), or none to keep every frame"),
        ]
        for ok, key, value, expected in checks:
            if not ok:
                raise ConfigError(f"extraction {key} = {value!r} is invalid; expected {expected}")


@dataclass(frozen=True)
class VideoFeatures:
    """Features of one video."""

    features: dict[str, np.ndarray]  # stream name -> (D, T) float32
    num_frames: int  # T, the number of (resampled) frames
    seconds: dict[str, float] = field(default_factory=dict)  # wall seconds per stage
    timing: Optional[VideoTiming] = None  # the video's own rate and duration, the features' rate


@dataclass(frozen=True)
class ExtractionSummary:
    extracted: list[str]  # videos with at least one file (re)written
    skipped: list[str]  # videos whose files were all complete already
    out_dir: Path
    manifest: Path | None = None  # out_dir/manifest.json, on the rank that wrote it


class FeatureExtractor:
    """Loaded networks plus the recipe; :meth:`extract` turns one video into features.

    Build it once (loading weights takes seconds) and call :meth:`extract` per video.

    Args:
        models: ``{stream: network}``: :class:`InceptionI3d` (3 or 2 input channels) for the
            I3D streams, :class:`VisionTransformer` for ``clip_rgb``.
        settings: the recipe.
    """

    def __init__(self, models: Mapping[FeatureStream | str, nn.Module],
                 settings: ExtractionSettings | None = None) -> None:
        self.settings = settings or ExtractionSettings()
        try:
            self.device = local_device(resolve_device(self.settings.device))
        except ConfigError as err:
            raise ConfigError(f"extraction device: {err}") from None
        self.models = {FeatureStream(k): m.to(self.device).eval() for k, m in models.items()}
        self._flow_cost_reported = False

    @classmethod
    def from_weights(
        cls,
        streams: Iterable[FeatureStream | str] = DEFAULT_STREAMS,
        *,
        i3d_rgb_weights: str | Path | None = None,
        i3d_flow_weights: str | Path | None = None,
        clip_weights: str | Path | None = None,
        settings: ExtractionSettings | None = None,
        weight_names: Mapping[FeatureStream, str] | None = None,
    ) -> FeatureExtractor:
        """Load the networks the streams need from local files (never downloaded).

        Args:
            weight_names: how the caller names each weights option in errors (the CLI passes
                its flags); defaults to the keyword names.

        Raises:
            WeightsNotFoundError: a needed file is not given or not there (says how to get it).
            CheckpointError: a file does not fit its network.
        """
        names = dict(weight_names or {})
        models: dict[FeatureStream, nn.Module] = {}
        for stream in parse_streams([FeatureStream(s).value for s in streams]):
            what = names.get(stream, f"{stream.value}_weights")
            if stream is FeatureStream.I3D_RGB:
                models[stream] = load_i3d(i3d_rgb_weights, 3, what=what)
            elif stream is FeatureStream.I3D_FLOW:
                models[stream] = load_i3d(i3d_flow_weights, 2, what=what)
            else:
                models[stream] = load_clip_visual(clip_weights, what=what)
        return cls(models, settings)

    @property
    def streams(self) -> tuple[FeatureStream, ...]:
        return tuple(self.models)

    def recipe(self) -> dict[str, object]:
        """The settings that decide the features' values (for the manifest)."""
        s = self.settings
        return {"window": s.window, "image_size": s.image_size, "resize": s.resize.value,
                "flow_method": s.flow_method.value, "flow_bound": s.flow_bound, "fps": s.fps}

    def feature_dim(self, stream: FeatureStream | str) -> int:
        stream = FeatureStream(stream)
        if stream is FeatureStream.CLIP_RGB:
            return int(self.models[stream].width)
        return I3D_DIM

    def extract(self, video: str | Path, streams: Iterable[FeatureStream | str] | None = None,
                *, progress: bool = False) -> VideoFeatures:
        """Features of one video file, one column per frame at ``settings.fps`` (per decoded
        frame without it).

        Args:
            video: a video file PyAV can decode.
            streams: a subset of the loaded streams (default: all of them).
            progress: show a tqdm bar per stream (frames, ETA, seconds per stage).

        Returns:
            :class:`VideoFeatures` with ``features[stream]`` of shape (D, T) float32.

        Raises:
            DataError: the file cannot be decoded or has no frames.
        """
        wanted = parse_streams([FeatureStream(s).value for s in (streams or self.models)])
        absent = [s.value for s in wanted if s not in self.models]
        if absent:
            raise ValueError(f"streams {absent} were not loaded into this extractor")
        video = Path(video)
        declared = self._expected_frames(video)
        if self.settings.overlap:
            features, seconds, timing = self._extract_overlapped(video, wanted, declared, progress)
        else:
            features, seconds, timing = self._extract_sequential(video, wanted, declared, progress)
        lengths = {name: array.shape[1] for name, array in features.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"{video}: streams decoded different frame counts {lengths}")
        num_frames = next(iter(lengths.values()))
        if num_frames == 0:
            raise DataError(f"{video} has no decodable video frames")
        if timing is not None and timing.resampled:
            logger.info("%s: %d frames at %.3g fps (%.2f s) resampled to %d at %.3g fps",
                        video.name, timing.source_frames, timing.source_fps, timing.duration_s,
                        timing.frames, timing.fps)
        return VideoFeatures(features, num_frames, seconds, timing)

    def _expected_frames(self, video: Path) -> int:
        """Frames the features will have, from the container's header (0 when unknown): the
        declared count, or at ``settings.fps`` the count its declared duration gives."""
        info = probe_video(video)
        if self.settings.fps is None:
            return info.num_frames
        duration = info.num_frames / info.fps if info.num_frames and info.fps else info.duration_s
        return max(1, int(np.ceil(duration * self.settings.fps - 1e-6))) if duration > 0 else 0

    def _frames(self, video: Path) -> TimedFrames[np.ndarray]:
        return timed_frames(video, self.settings.fps)

    def _extract_sequential(
        self, video: Path, wanted: Sequence[FeatureStream], declared: int, progress: bool
    ) -> tuple[dict[str, np.ndarray], dict[str, float], Optional[VideoTiming]]:
        """One pass per stream, decoding again each time, every stage in this thread."""
        seconds: dict[str, float] = defaultdict(float)
        features: dict[str, np.ndarray] = {}
        timing = None
        for stream in wanted:
            clock = StageClock()  # one per stream, so its bar shows its own stages
            with tqdm(total=declared or None, unit="frame", desc=f"{video.stem} {stream.value}",
                      leave=False, disable=not progress, dynamic_ncols=True) as bar:
                decoded = self._frames(video)
                frames = clock.iterate("decode", decoded)
                inputs = self._inputs(stream, frames, clock, declared, None)
                features[stream.value] = self._run_stream(stream, inputs, clock, bar.update)
                for stage, value in clock.seconds.items():
                    seconds[stage] += value
                timing = decoded.timing
        return features, dict(seconds), timing

    def _extract_overlapped(
        self, video: Path, wanted: Sequence[FeatureStream], declared: int, progress: bool
    ) -> tuple[dict[str, np.ndarray], dict[str, float], Optional[VideoTiming]]:
        """One decode for all streams; decode, flow and each network in their own thread."""
        clock = StageClock()
        pipe = Pipeline(self.settings.queue_size, clock)
        lock = threading.Lock()
        with tqdm(total=(declared * len(wanted)) or None, unit="frame",
                  desc=f"{video.stem} {'+'.join(s.value for s in wanted)}", leave=False,
                  disable=not progress, dynamic_ncols=True) as bar:

            def advance(frames: int) -> None:
                with lock:
                    bar.update(frames)
                    bar.set_postfix_str(clock.summary(), refresh=False)

            decoded = self._frames(video)
            feeds = pipe.split(clock.iterate("decode", decoded), len(wanted))
            tasks = {
                stream: pipe.run(
                    lambda s=stream, f=feed: self._run_stream(
                        s, self._inputs(s, f, clock, declared, pipe), clock, advance
                    )
                )
                for stream, feed in zip(wanted, feeds, strict=True)
            }
            pipe.join()
        features = {stream.value: task.result for stream, task in tasks.items()}
        assert all(f is not None for f in features.values())
        return features, dict(clock.seconds), decoded.timing  # type: ignore[return-value]

    # -- one stream --------------------------------------------------------------------------

    def _run_stream(self, stream: FeatureStream, inputs: Iterator[np.ndarray], clock: StageClock,
                    advance: Callable[[int], object]) -> np.ndarray:
        """(D, T) features of one stream: per-frame inputs -> batches -> network."""
        if stream is FeatureStream.CLIP_RGB:
            batches = _chunks(inputs, self.settings.batch_size)
        else:
            batches = iter_window_batches(inputs, self.settings.window, self.settings.batch_size)
        model = self.models[stream]
        outputs: list[np.ndarray] = []
        for batch in clock.iterate("batching", batches):  # (B, C, [window,] H, W)
            with clock.stage(stream.value), torch.inference_mode():
                out = model(torch.from_numpy(batch).to(self.device))  # (B, D)
                outputs.append(out.float().cpu().numpy())
            advance(len(batch))
        if not outputs:
            return np.zeros((self.feature_dim(stream), 0), np.float32)
        return np.ascontiguousarray(np.concatenate(outputs).T, dtype=np.float32)  # (D, T)

    def _inputs(self, stream: FeatureStream, frames: Iterator[np.ndarray], clock: StageClock,
                declared: int, pipe: Pipeline | None) -> Iterator[np.ndarray]:
        """Per-frame network inputs (C, H, W) float32, in frame order, from decoded frames
        (H, W, 3) uint8. With ``pipe``, the flow runs in a thread of its own."""
        s = self.settings
        if stream is FeatureStream.CLIP_RGB:
            size = int(self.models[stream].image_size)
            return clock.iterate("preprocess", (preprocess_clip(f, size) for f in frames))
        resized = (resize_for_i3d(f, s.image_size, s.resize) for f in frames)
        if stream is FeatureStream.I3D_RGB:
            rgb = (rgb_to_unit_range(center_crop(f, s.image_size)) for f in resized)
            return clock.iterate("preprocess", rgb)  # (3, S, S) in [-1, 1]
        gray = clock.iterate("preprocess", (rgb_to_gray(f) for f in resized))
        flows = clock.iterate("flow", iter_flow(gray, self._flow_fn(declared)))  # (H, W, 2) px
        if pipe is not None:
            flows = pipe.thread(flows)
        return (
            clip_and_scale(center_crop(f, s.image_size), s.flow_bound).transpose(2, 0, 1)
            for f in flows
        )  # (2, S, S) in [-1, 1]

    def _flow_fn(self, declared: int) -> FlowFn:
        """The flow function; for TV-L1, the first calls are timed to log a duration estimate."""
        flow_fn = make_flow_fn(self.settings.flow_method)
        if self.settings.flow_method is not FlowMethod.TVL1:
            return flow_fn
        timings: list[float] = []

        def timed_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
            if len(timings) >= FLOW_PROBE_CALLS:
                return flow_fn(prev, nxt)
            start = perf_counter()
            flow = flow_fn(prev, nxt)
            timings.append(perf_counter() - start)
            if len(timings) == FLOW_PROBE_CALLS:
                self._report_flow_cost(sum(timings) / len(timings), declared, prev.shape)
            return flow

        return timed_flow

    def _report_flow_cost(self, per_frame: float, frames: int, shape: tuple[int, ...]) -> None:
        level = logging.INFO if self._flow_cost_reported else logging.WARNING
        self._flow_cost_reported = True
        total = f"about {_duration(per_frame * frames)} for this video's {frames} frames" \
            if frames else "the frame count is unknown"
        logger.log(
            level,
            "TV-L1 optical flow runs on the CPU (OpenCV) and is slow: %.2f s per frame at %dx%d, "
            "%s; --flow-method farneback is much faster but deviates from the I3D recipe",
            per_frame, shape[1], shape[0], total,
        )


def extract_videos(
    videos: str | Path | Sequence[Path],
    out_dir: str | Path,
    extractor: FeatureExtractor,
    streams: Iterable[FeatureStream | str] | None = None,
    *,
    overwrite: bool = False,
    combined: bool = True,
    progress: bool = True,
    manifest: bool = True,
) -> ExtractionSummary:
    """Extract and write features for a video file, a folder of videos, or a list of files.

    Resumable: a video whose requested files are complete (shape (D, T) with T the declared frame
    count, float32, finite) is skipped; an incomplete or corrupt file is redone; writes are
    atomic. With both I3D streams and ``combined``, also writes ``features/<video>.npy``.

    Under a process group (``torchrun``; see :mod:`.shards`) each rank extracts its own share of
    the videos, balanced by frame count; then every rank waits for the others (a barrier) and
    rank 0 writes ``<out>/manifest.json`` of all the videos (:func:`.store.write_manifest`).
    Without a process group this is the only rank.

    Returns:
        Which videos this rank extracted and which it skipped.
    """
    paths = list_videos(videos) if isinstance(videos, (str, Path)) else [Path(v) for v in videos]
    wanted = parse_streams([FeatureStream(s).value for s in (streams or extractor.streams)])
    out_dir = Path(out_dir)
    rank, world = rank_and_world()
    mine = rank_share(paths, rank, world)
    if world > 1:
        logger.info("rank %d of %d: %d of %d videos", rank, world, len(mine), len(paths))
    extracted: list[str] = []
    skipped: list[str] = []
    if extractor.settings.fps is None and rank == 0:
        _warn_mixed_rates(paths)
    label = "videos" if world == 1 else f"videos (rank {rank}/{world})"
    for video in tqdm(mine, desc=label, unit="video", disable=not progress, dynamic_ncols=True):
        if _extract_one(video, out_dir, extractor, wanted, overwrite, combined, progress):
            extracted.append(video.stem)
        else:
            skipped.append(video.stem)
    barrier()  # every rank's files are written
    written = None
    if manifest and rank == 0:
        written = write_manifest(
            out_dir, {v.stem: _targets(v, out_dir, wanted, combined) for v in paths},
            [s.value for s in wanted], extractor.recipe(), {v.stem: v.name for v in paths},
        )
    return ExtractionSummary(extracted, skipped, out_dir, written)


def extract_video_features(
    video_path: str | Path,
    streams: Iterable[FeatureStream | str] = DEFAULT_STREAMS,
    *,
    i3d_rgb_weights: str | Path | None = None,
    i3d_flow_weights: str | Path | None = None,
    clip_weights: str | Path | None = None,
    settings: ExtractionSettings | None = None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Features of one video in memory: ``{stream: (D, T) float32}``, nothing written.

    Loads the networks on every call; for many videos build one
    :meth:`FeatureExtractor.from_weights` and call its :meth:`~FeatureExtractor.extract`.
    """
    extractor = FeatureExtractor.from_weights(
        streams, i3d_rgb_weights=i3d_rgb_weights, i3d_flow_weights=i3d_flow_weights,
        clip_weights=clip_weights, settings=settings,
    )
    return extractor.extract(video_path, progress=progress).features


def _extract_one(video: Path, out_dir: Path, extractor: FeatureExtractor,
                 streams: tuple[FeatureStream, ...], overwrite: bool, combined: bool,
                 progress: bool) -> bool:
    """Write the missing files of one video (and its ``video_info``); False when there was
    nothing to do."""
    targets = {s: out_dir / s.folder / f"{video.stem}.npy" for s in streams}  # written here
    for path in targets.values():
        remove_stale_temps(path)
    expected = _done_frames(video, out_dir, extractor.settings.fps)
    todo = [s for s, path in targets.items()
            if overwrite or expected is None
            or not is_complete(path, extractor.feature_dim(s), expected)]
    if todo:
        result = extractor.extract(video, todo, progress=progress)
        declared = probe_video(video).num_frames
        if extractor.settings.fps is None and declared and result.num_frames != declared:
            logger.warning("%s declares %d frames but %d were decoded; features have %d columns",
                           video, declared, result.num_frames, result.num_frames)
        for stream in todo:
            atomic_save_npy(targets[stream], result.features[stream.value])
        if result.timing is not None:
            write_video_info(out_dir, video.stem, {"source": video.name, **result.timing.to_dict()})
        logger.info("%s: %d frames (%s)", video.name, result.num_frames,
                    ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items()))
    i3d = (FeatureStream.I3D_RGB, FeatureStream.I3D_FLOW)
    if not _writes_combined(streams, combined):
        return bool(todo)
    path = out_dir / COMBINED_FOLDER / f"{video.stem}.npy"
    remove_stale_temps(path)
    rgb, flow = (np.load(targets[s]) for s in i3d)
    if any(s in todo for s in i3d) or not is_complete(path, 2 * I3D_DIM, rgb.shape[1]):
        atomic_save_npy(path, np.concatenate([rgb, flow], axis=0))  # (2048, T), RGB rows first
        return True
    return bool(todo)


def _warn_mixed_rates(paths: Sequence[Path]) -> None:
    """One warning when the videos declare different frame rates and nothing resamples them:
    their features would be at different speeds."""
    rates = {p.name: round(probe_video(p).fps, 2) for p in paths}
    if len(set(rates.values()) - {0.0}) > 1:
        shown = ", ".join(f"{name} {rate:g}" for name, rate in list(rates.items())[:4])
        logger.warning("the videos have different frame rates (%s%s) and every decoded frame is "
                       "kept: their features run at different speeds; pass --fps RATE (the "
                       "rate the model is trained at)", shown, ", ..." if len(rates) > 4 else "")


def _done_frames(video: Path, out_dir: Path, fps: Optional[float]) -> Optional[int]:
    """T of the features a finished extraction of ``video`` at ``fps`` wrote: from its
    ``video_info`` when that was taken at the same rate; the container's declared count for
    files without one (written before the info existed, never resampled); None when the
    features on disk are at another rate (all of them must be extracted again)."""
    info = read_video_info(out_dir, video.stem)
    if info is None:
        return probe_video(video).num_frames if fps is None else None
    same = not info.get("resampled") if fps is None else (
        bool(info.get("resampled")) and abs(float(info.get("fps", 0)) - fps) < 1e-9)
    if not same:
        logger.info("%s: features on disk were taken at %s fps, not %s; extracting them again",
                    video.name, info.get("fps"), fps or "the video's own rate")
        return None
    return int(info.get("frames", 0))


def _writes_combined(streams: Sequence[FeatureStream], combined: bool) -> bool:
    return combined and FeatureStream.I3D_RGB in streams and FeatureStream.I3D_FLOW in streams


def _targets(video: Path, out_dir: Path, streams: Sequence[FeatureStream],
             combined: bool) -> dict[str, Path]:
    """The files extraction writes for ``video``: stream name (or ``combined``) -> path."""
    files = {s.value: out_dir / s.folder / f"{video.stem}.npy" for s in streams}
    if _writes_combined(streams, combined):
        files["combined"] = out_dir / COMBINED_FOLDER / f"{video.stem}.npy"
    return files


def _chunks(items: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Consecutive items stacked in groups of ``size`` (the last may be smaller)."""
    group: list[np.ndarray] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield np.stack(group)
            group = []
    if group:
        yield np.stack(group)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
