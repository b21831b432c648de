"""A small synthetic two-stream dataset in the MS-TCN layout (``twostream-das make-demo``).

The labels follow a kitchen-like activity grammar: four recipes, each an ordered list of
blocks of actions; some blocks are optional, some may swap with the next one, some have their
actions in any order, and ``background`` fills some gaps between actions. Segment durations
are gamma-distributed with class-specific means (in frames at 15 fps), scaled per video by the
performer's pace. Frame-level statistics (about 40 frames per segment, a background segment
between many actions) are in the range of GTEA; no real annotation is used or copied.

The two streams carry complementary evidence. Every class has a prototype in each stream, but
``open``/``close`` and ``pour``/``scoop``/``stir`` look alike in RGB (same objects, same hands)
while moving differently (distinct FLOW prototypes), and ``take``/``put`` and ``cut``/``spread``
move alike (near-identical FLOW prototypes) while their objects differ in RGB. Inside such a
group the prototypes differ less than two segments of one class do, so even a whole segment
tells them apart only unreliably in that stream; and the grammar puts them into
interchangeable places (``any_order`` and ``swap_next`` blocks in ``RECIPES``), so the context
does not tell them apart either: there, each stream needs the other's evidence. Every recipe
has such places for both streams, so every performer's videos (every test fold) are about
equally hard for the two streams. On top come per-segment variation, per-person and per-video
offsets, a slow drift, temporally correlated and white noise, and boundaries blurred over a few
frames. A per-frame classifier is therefore imperfect on either stream (about 70-80% frame
accuracy each), and fusing the two streams' probabilities beats both by a wide margin
(``tests/data/test_demo.py`` checks this with a linear Gaussian (LDA) baseline, per frame and
per ground-truth segment).

Layout written under ``out_dir``::

    mapping.txt, groundTruth/<video>.txt, splits/{train,test}.split{1..4}.bundle
    features_rgb/<video>.npy    float32 (RGB_DIM, T)
    features_flow/<video>.npy   float32 (FLOW_DIM, T)
    demo_info.json              marks the folder as a demo; generator settings and seed

24 videos (4 performers x 6), 300-1200 frames each; fold k tests performer k's 6 videos.
Everything is drawn from ``numpy.random.SeedSequence(seed)``: the same seed gives the same
bytes, on every run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .._version import __version__
from ..errors import DataError

logger = logging.getLogger(__name__)

DEFAULT_DEMO_ROOT = Path("data/demo")  # ``dataset.root`` of the ``demo`` preset
DEMO_PRESET = "demo"
DEMO_STREAM_FOLDERS: dict[str, str] = {"rgb": "features_rgb", "flow": "features_flow"}
DEMO_MARKER = "demo_info.json"
GENERATOR_VERSION = 2  # bump when the generated data changes for a given seed

FPS = 15.0
RGB_DIM = 48
FLOW_DIM = 40
NUM_PERFORMERS = 4  # = folds; fold k tests performer k
VIDEOS_PER_PERFORMER = 6
MIN_FRAMES, MAX_FRAMES = 300, 1200
MIN_SEGMENT = 4  # frames

CLASSES: tuple[str, ...] = (
    "background", "take", "put", "open", "close", "pour", "scoop", "stir", "spread", "cut",
)
MEAN_DURATION: dict[str, float] = {  # frames at 15 fps
    "background": 18, "take": 30, "put": 24, "open": 40, "close": 30,
    "pour": 60, "scoop": 36, "stir": 75, "spread": 85, "cut": 65,
}
GAMMA_SHAPE = 4.0  # duration coefficient of variation 1/sqrt(4) = 0.5
BACKGROUND_GAP_PROB = 0.5  # chance of a background segment between two actions
SKIP_OPTIONAL_PROB = 0.3
SWAP_PROB = 0.5
DRIFT_WAVES = 3

# Classes that look alike in one stream (near-identical prototypes) but not in the other.
CONFUSABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "rgb": (("open", "close"), ("pour", "scoop", "stir")),
    "flow": (("take", "put"), ("cut", "spread")),
}


@dataclass(frozen=True)
class Block:
    """Actions done in order (or in any order); may be skipped or swapped with the next block."""

    actions: tuple[str, ...]
    optional: bool = False
    swap_next: bool = False
    any_order: bool = False  # the actions come in a random order


# ``any_order`` and ``swap_next`` blocks put classes that look alike in one stream into
# interchangeable places (close one container and open the next, put one thing down and take
# the next, butter or cut the bread first, scoop the powder or pour the water first), so the
# order of the recipe does not tell them apart: there, one stream sees only "one of the group"
# and needs the other stream to tell which.
RECIPES: dict[str, tuple[Block, ...]] = {
    "coffee": (
        Block(("take", "open")),  # the coffee jar
        Block(("scoop", "pour")),  # coffee powder, hot water
        Block(("close", "open"), any_order=True),  # the coffee jar, the sugar bowl
        Block(("put", "take"), any_order=True),  # the jar away, the milk
        Block(("pour",), swap_next=True),  # milk
        Block(("take", "scoop", "pour"), optional=True),  # sugar
        Block(("put", "take"), any_order=True),  # the milk away, a spoon
        Block(("stir", "put")),
    ),
    "tea": (
        Block(("take", "open")),  # the tea box
        Block(("put", "take"), any_order=True),  # the box down, a tea bag
        Block(("close", "open"), any_order=True),  # the tea box, the kettle
        Block(("take", "pour"), swap_next=True),  # water
        Block(("take", "scoop", "pour"), optional=True),  # honey
        Block(("put", "take"), any_order=True),  # the kettle away, a spoon
        Block(("stir", "pour"), any_order=True, optional=True),  # lemon juice
        Block(("close", "put")),
    ),
    "sandwich": (
        Block(("take", "open", "put")),  # the bread bag
        Block(("take", "spread", "put"), swap_next=True),  # butter
        Block(("take", "cut", "put")),  # the bread
        Block(("take", "open")),  # the jam jar
        Block(("scoop", "pour"), any_order=True),  # jam, honey
        Block(("close", "open"), any_order=True),  # the jam jar, the bread bag
        Block(("cut", "put")),
    ),
    "salad": (
        Block(("take", "cut")),  # a tomato
        Block(("put", "take"), any_order=True),  # the tomato away, a cucumber
        Block(("cut",)),
        Block(("put", "take"), any_order=True),  # the cucumber away, the oil
        Block(("open", "pour")),  # the oil
        Block(("close", "open"), any_order=True),  # the oil, the salt
        Block(("scoop", "stir")),  # salt, tossing
        Block(("put",)),
    ),
}


@dataclass(frozen=True)
class StreamNoise:
    """Feature model of one stream (units: prototype entries are N(0, 1))."""

    dim: int
    confusable_spread: float  # prototype distance inside a confusable group (vs ~sqrt(2 dim))
    segment_jitter: float  # per-segment offset of the prototype
    white: float  # per-frame noise
    correlated: float  # temporally smoothed noise, amplitude
    correlated_sigma: float  # its smoothing, frames
    drift: float  # slow drift amplitude (a few random sinusoids per dim)
    drift_period: float  # shortest drift period, frames (the longest is 4x)
    person: float  # per-performer offset
    video: float  # per-video offset
    blur_sigma: float  # crossfade of the clean signal at boundaries, frames


# Tuned so that a per-frame linear classifier (LDA) reaches about 70-81% frame accuracy on each
# stream and about 88-94% on the averaged probabilities (folds 1-4, seeds 0-2); on
# ground-truth segments 73-91% per stream and over 98% fused.
STREAM_NOISE: dict[str, StreamNoise] = {
    "rgb": StreamNoise(
        dim=RGB_DIM, confusable_spread=0.1, segment_jitter=0.4, white=1.8, correlated=0.8,
        correlated_sigma=4.0, drift=0.6, drift_period=200.0, person=0.4, video=0.4,
        blur_sigma=2.0,
    ),
    "flow": StreamNoise(
        dim=FLOW_DIM, confusable_spread=0.1, segment_jitter=0.4, white=1.5, correlated=0.8,
        correlated_sigma=3.0, drift=0.6, drift_period=200.0, person=0.4, video=0.4,
        blur_sigma=1.5,
    ),
}


@dataclass(frozen=True)
class DemoVideo:
    name: str
    performer: int  # 1-based; = the fold that tests this video
    labels: np.ndarray  # (T,) int64
    features: dict[str, np.ndarray]  # stream -> (D_s, T) float32


def make_demo(out_dir: str | Path, seed: int = 0, force: bool = False) -> Path:
    """Write the demo dataset under ``out_dir`` and return ``out_dir``.

    ``out_dir`` must be missing, empty or an earlier demo (it holds ``demo_info.json``); any
    other folder is refused unless ``force``. Only the demo's own files are (over)written;
    nothing else is deleted.

    Raises:
        DataError: ``out_dir`` is a file, or a non-empty non-demo folder without ``force``.
    """
    out = Path(out_dir)
    _check_target(out, force)
    videos = generate_videos(seed)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / DEMO_MARKER, _marker(seed, complete=False))
    _write_dataset(out, videos)
    _write_json(out / DEMO_MARKER, _marker(seed, complete=True))
    frames = sum(len(v.labels) for v in videos)
    logger.info("demo dataset: %d videos, %d frames, %d folds in %s", len(videos), frames,
                NUM_PERFORMERS, out)
    return out


def is_demo_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a demo dataset's marker file."""
    return (Path(path) / DEMO_MARKER).is_file()


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(
            f"demo output {out} is a file; expected a folder (missing, empty or a demo)"
        )
    if force or not out.exists() or is_demo_folder(out) or not any(out.iterdir()):
        return
    raise DataError(
        f"demo output {out} is not empty and holds no {DEMO_MARKER}; expected a new or empty "
        "folder or an earlier demo (use --force to write into it anyway; nothing is deleted)"
    )


# ----------------------------------------------------------------------------- generation


def generate_videos(seed: int = 0) -> list[DemoVideo]:
    """All demo videos, in name order, drawn from ``SeedSequence(seed)``."""
    root = np.random.SeedSequence(seed)
    proto_seq, person_seq, video_seq = root.spawn(3)
    prototypes = make_prototypes(np.random.default_rng(proto_seq))
    person_rngs = [np.random.default_rng(s) for s in person_seq.spawn(NUM_PERFORMERS)]
    persons = [person_offsets(rng) for rng in person_rngs]
    plan = _video_plan()
    video_rngs = [np.random.default_rng(s) for s in video_seq.spawn(len(plan))]
    videos = []
    for (name, performer, recipe), rng in zip(plan, video_rngs, strict=True):
        labels = sample_labels(recipe, rng)
        features = {
            s: render_stream(labels, prototypes[s], persons[performer - 1][s], STREAM_NOISE[s], rng)
            for s in DEMO_STREAM_FOLDERS
        }
        videos.append(DemoVideo(name, performer, labels, features))
    return videos


def _video_plan() -> list[tuple[str, int, str]]:
    """(name, performer, recipe): every performer does all recipes, two of them twice."""
    recipes = list(RECIPES)
    plan = []
    for p in range(1, NUM_PERFORMERS + 1):
        extra = [recipes[(p - 1) % len(recipes)], recipes[p % len(recipes)]]
        for recipe in sorted(recipes + extra):
            take = 1 + sum(1 for _, q, r in plan if q == p and r == recipe)
            plan.append((f"p{p}_{recipe}_{take}", p, recipe))
    return sorted(plan)


def make_prototypes(
    rng: np.random.Generator,
    classes: Sequence[str] = CLASSES,
    confusable: Mapping[str, Sequence[Sequence[str]]] = CONFUSABLE,
    streams: Mapping[str, StreamNoise] = STREAM_NOISE,
) -> dict[str, np.ndarray]:
    """Class prototypes per stream; confusable groups share a centre up to a small spread.

    Args:
        classes: class names in id order (the demo's by default).
        confusable: stream -> groups of class names that look alike in that stream.
        streams: stream -> its feature model (dimension, spread of a confusable group).

    Returns:
        stream -> (D_s, C) float64.
    """
    out = {}
    for stream, noise in streams.items():
        protos = rng.normal(size=(noise.dim, len(classes)))  # (D, C)
        for group in confusable[stream]:
            ids = [list(classes).index(c) for c in group]
            centre = protos[:, ids[0]].copy()
            for i in ids:
                protos[:, i] = centre + noise.confusable_spread * rng.normal(size=noise.dim)
        out[stream] = protos
    return out


def person_offsets(
    rng: np.random.Generator, streams: Mapping[str, StreamNoise] = STREAM_NOISE
) -> dict[str, np.ndarray]:
    """stream -> (D_s,) offset shared by all videos of one performer."""
    return {s: n.person * rng.normal(size=n.dim) for s, n in streams.items()}


def sample_actions(recipe: str, rng: np.random.Generator) -> list[str]:
    """One performance of ``recipe`` as an action list (optional blocks, swaps applied)."""
    blocks = list(RECIPES[recipe])
    i = 0
    while i < len(blocks) - 1:
        if blocks[i].swap_next and rng.random() < SWAP_PROB:
            blocks[i], blocks[i + 1] = blocks[i + 1], blocks[i]
            i += 2
        else:
            i += 1
    actions: list[str] = []
    for block in blocks:
        if block.optional and rng.random() < SKIP_OPTIONAL_PROB:
            continue
        if block.any_order:
            actions.extend(block.actions[int(i)] for i in rng.permutation(len(block.actions)))
        else:
            actions.extend(block.actions)
    return actions


def sample_segments(recipe: str, rng: np.random.Generator) -> list[str]:
    """Actions with background at both ends and in some gaps (always between repeats)."""
    segments = ["background"]
    for action in sample_actions(recipe, rng):
        gap = segments[-1] != "background" and rng.random() < BACKGROUND_GAP_PROB
        if gap or segments[-1] == action:
            segments.append("background")
        segments.append(action)
    return [*segments, "background"]


def sample_labels(recipe: str, rng: np.random.Generator) -> np.ndarray:
    """Frame labels of one video: gamma durations scaled to [MIN_FRAMES, MAX_FRAMES].

    Returns:
        (T,) int64 class ids.
    """
    segments = sample_segments(recipe, rng)
    pace = rng.uniform(0.8, 1.6)  # the performer's speed on this video
    means = np.array([MEAN_DURATION[c] for c in segments]) * pace
    durations = rng.gamma(GAMMA_SHAPE, means / GAMMA_SHAPE)  # (S,)
    total = durations.sum()
    scale = np.clip(total, MIN_FRAMES, MAX_FRAMES) / total
    lengths = np.maximum(np.rint(durations * scale).astype(np.int64), MIN_SEGMENT)  # (S,)
    lengths[-1] += max(MIN_FRAMES - int(lengths.sum()), 0)
    while lengths.sum() > MAX_FRAMES:  # rounding and MIN_SEGMENT can overshoot by a little
        lengths[int(np.argmax(lengths))] -= int(lengths.sum()) - MAX_FRAMES
    ids = np.array([CLASSES.index(c) for c in segments], dtype=np.int64)
    return np.repeat(ids, lengths)


def render_stream(
    labels: np.ndarray,
    prototypes: np.ndarray,
    person: np.ndarray,
    noise: StreamNoise,
    rng: np.random.Generator,
) -> np.ndarray:
    """Features of one stream for one video.

    Args:
        labels: (T,) class ids.
        prototypes: (D, C) class prototypes of the stream.
        person: (D,) the performer's offset.

    Returns:
        (D, T) float32.
    """
    dim, num_frames = noise.dim, labels.shape[0]
    seg_of_frame = np.cumsum(np.diff(labels, prepend=-1) != 0) - 1  # (T,) segment index
    jitter = noise.segment_jitter * rng.normal(size=(dim, seg_of_frame[-1] + 1))  # (D, S)
    clean = prototypes[:, labels] + jitter[:, seg_of_frame]  # (D, T)
    clean = gaussian_filter1d(clean, noise.blur_sigma, axis=1, mode="nearest")  # crossfade
    offset = (person + noise.video * rng.normal(size=dim))[:, None]  # (D, 1)
    drift = noise.drift * _slow_drift(rng, dim, num_frames, noise.drift_period)  # (D, T)
    correlated = noise.correlated * _smooth_noise(rng, dim, num_frames, noise.correlated_sigma)
    white = noise.white * rng.normal(size=(dim, num_frames))  # (D, T)
    return (clean + offset + drift + correlated + white).astype(np.float32)


def _slow_drift(rng: np.random.Generator, dim: int, num_frames: int, period: float) -> np.ndarray:
    """DRIFT_WAVES sinusoids per dim, periods in [period, 4 period], unit variance: (D, T)."""
    periods = rng.uniform(period, 4 * period, size=(dim, DRIFT_WAVES, 1))
    phases = rng.uniform(0, 2 * np.pi, size=(dim, DRIFT_WAVES, 1))
    amps = rng.normal(size=(dim, DRIFT_WAVES, 1))
    t = np.arange(num_frames)[None, None, :]  # (1, 1, T)
    waves = amps * np.cos(2 * np.pi * t / periods + phases)  # (D, K, T)
    return waves.sum(axis=1) / np.sqrt(DRIFT_WAVES / 2)


def _smooth_noise(rng: np.random.Generator, dim: int, num_frames: int, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to unit variance per entry: (D, T)."""
    raw = gaussian_filter1d(rng.normal(size=(dim, num_frames)), sigma, axis=1, mode="wrap")
    radius = int(4.0 * sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    return raw / np.sqrt(np.sum(kernel**2))

# ----------------------------------------------------------------------------- writing


def _write_dataset(out: Path, videos: list[DemoVideo]) -> None:
    for sub in ("groundTruth", "splits", *DEMO_STREAM_FOLDERS.values()):
        (out / sub).mkdir(exist_ok=True)
    (out / "mapping.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES)))
    for video in videos:
        text = "".join(f"{CLASSES[i]}\n" for i in video.labels)
        (out / "groundTruth" / f"{video.name}.txt").write_text(text)
        for stream, folder in DEMO_STREAM_FOLDERS.items():
            np.save(out / folder / f"{video.name}.npy", video.features[stream])
    for fold in range(1, NUM_PERFORMERS + 1):
        test = [v.name for v in videos if v.performer == fold]
        train = [v.name for v in videos if v.performer != fold]
        for part, names in (("train", train), ("test", test)):
            bundle = out / "splits" / f"{part}.split{fold}.bundle"
            bundle.write_text("".join(f"{n}.txt\n" for n in names))


def _marker(seed: int, complete: bool) -> dict[str, Any]:
    return {
        "what": "twostream_das synthetic demo dataset (make-demo)",
        "seed": int(seed),
        "generator_version": GENERATOR_VERSION,
        "package_version": __version__,
        "complete": complete,
        "fps": FPS,
        "folds": NUM_PERFORMERS,
        "streams": {s: {"folder": f, "dim": STREAM_NOISE[s].dim, "orientation": "DxT"}
                    for s, f in DEMO_STREAM_FOLDERS.items()},
        "confusable": {s: [list(g) for g in groups] for s, groups in CONFUSABLE.items()},
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
