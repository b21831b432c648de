"""Configuration: frozen dataclasses, YAML presets, ``key=value`` overrides.

Every constant of the method has exactly one home here. A config is built from the
dataclass defaults, then a YAML file (a preset name such as ``gtea`` or a path), then
dotted overrides (``train.lr=1e-4``). Unknown keys and wrongly typed values are errors
(OmegaConf structured configs enforce both). Checkpoints store :func:`to_dict` of the
config, a plain dict of builtins, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Optional

import yaml
from omegaconf import OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError

logger = logging.getLogger(__name__)

STREAM_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
"""Characters a stream name may use (it becomes file names, CLI flags and JSON keys)."""


class FeatureSource(str, enum.Enum):
    """Where a stream's per-frame features come from."""

    I3D_RGB = "i3d_rgb"  # rows 0..1023 of the standard 2048-d ``features/<video>.npy``
    I3D_FLOW = "i3d_flow"  # rows 1024..2047 of the same file
    FOLDER = "folder"  # ``<root>/<folder>/<video>.npy`` with any dimension


class Orientation(str, enum.Enum):
    """Axis order of a feature file on disk (never guessed)."""

    DxT = "DxT"  # (feature dim, frames): MS-TCN convention
    TxD = "TxD"  # (frames, feature dim)


class AttentionOutside(str, enum.Enum):
    """What the windowed attention does with window positions outside the sequence (and, a video
    being treated as if alone, on padded frames)."""

    EXACT = "exact"  # excluded: softmax over the keys inside the sequence (METHOD.md section 3)
    # DiffAct's code: zero keys and values there, every score + log(mask + 1e-6), softmax over
    # the whole window, then times the 0/1 mask (no renormalisation). What its checkpoints
    # were trained with; ``convert`` sets it. Only the plain PyTorch path implements it.
    DIFFACT = "diffact"


class MaskStrategy(str, enum.Enum):
    """Frame condition masks ("importance sampling" in the paper), training only."""

    FULL = "full"  # (a) all conditioning features
    ZERO = "zero"  # (b) none (excluded by default, as the paper states)
    BOUNDARY = "boundary"  # (c) zero frames whose soft boundary score >= threshold
    RANDOM_ACTION = "random_action"  # (d) zero all frames of k random present classes


class PostprocessKind(str, enum.Enum):
    NONE = "none"
    PURGE = "purge"  # remove segments shorter than ``window`` frames (METHOD.md section 5)
    DIFFACT_PURGE = "diffact_purge"  # DiffAct's: one pass, segments of at most ``window`` frames
    MEDIAN = "median"  # median filter over class probabilities, window ``window``
    MODE = "mode"  # mode (majority) filter over labels, window ``window``


class FusionInput(str, enum.Enum):
    """What each stream hands to late fusion (docs/FUSION.md has the measurements)."""

    FINAL = "final"  # the last DDIM step's x0 probabilities (mean over eval.samples): DiffAct's
    TRAJECTORY = "trajectory"  # the x0 probabilities averaged over the DDIM steps (and samples)


class FusionSampling(str, enum.Enum):
    """Where the streams meet (docs/FUSION.md has the measurements)."""

    SEPARATE = "separate"  # each stream samples alone; its output is fused afterwards (the paper)
    JOINT = "joint"  # fused at every DDIM step; each stream continues from the fused x0 estimate


class FusionRule(str, enum.Enum):
    """How late fusion combines the streams' per-frame class probabilities."""

    SUM = "sum"  # P = sum_s w_s P_s (METHOD.md section 5, the paper)
    PRODUCT = "product"  # P ∝ prod_s P_s ** w_s: weighted sum of log-probabilities, renormalised


class Precision(str, enum.Enum):
    """Inference precision (``eval.precision``)."""

    FP32 = "fp32"
    BF16 = "bf16"  # bf16 autocast


class ReviewScore(str, enum.Enum):
    """How ``review.csv`` ranks segments (``eval.review_score``), least certain first."""

    MAX_PROB = "max_prob"  # 1 - the segment's mean fused confidence (any K)
    MUTUAL_INFORMATION = "mutual_information"  # the segment's mean MI (needs eval.samples > 1)


class TimestepSpacing(str, enum.Enum):
    """Where a sampler's n steps lie on the N training steps (``eval.timestep_spacing``)."""

    LINEAR = "linear"  # DiffAct's floor(linspace(-1, N - 1, n + 1)): 999, 499 for n = 2
    QUADRATIC = "quadratic"  # (k / n)^2 (N - 1), more steps at low noise: 999, 250 for n = 2


class Views(str, enum.Enum):
    """Which temporal offset views inference samples at ``dataset.sample_rate`` r > 1
    (``eval.views``); at r = 1 there is one view either way."""

    ALL = "all"  # every offset 0 .. r-1, averaged at the subsampled rate (the paper, DiffAct)
    MIDDLE = "middle"  # offset r // 2 alone (DiffAct's decoder-noagg): r times fewer passes


class Average(str, enum.Enum):
    """How metrics are aggregated over the videos of a split."""

    POOLED = "pooled"  # MS-TCN / ASFormer / DiffAct: frames and TP/FP/FN summed, Edit per video
    PER_VIDEO = "per-video"  # every metric averaged over videos (Lea et al. 2017)


@dataclass(frozen=True)
class StreamDataConfig:
    """How one stream reads its features."""

    source: FeatureSource = FeatureSource.FOLDER
    folder: str = ""  # relative to ``dataset.root``; required for source=folder
    orientation: Orientation = Orientation.DxT  # only for source=folder (I3D files are DxT)
    dim: Optional[int] = None  # expected feature dim; None = read from the data, then checked


@dataclass(frozen=True)
class DatasetConfig:
    root: str = "data/demo"  # dataset folder holding mapping.txt, splits/, groundTruth/
    # The model's streams, by name, in order (one model stream each; one, two or more). The
    # order is the order of tables, plots and of the streams' random draws. Presets name them
    # (``rgb``, ``flow``); a config file or an override ``dataset.streams=...`` that sets the
    # section replaces it as a whole, ``dataset.streams.NAME=null`` drops one stream.
    streams: Dict[str, StreamDataConfig] = field(default_factory=dict)
    fps: float = 15.0  # frames per second of the labels (segments in seconds)
    sample_rate: int = 1  # temporal subsampling; training draws one offset, testing runs all
    length_tolerance: int = 5  # frames a stream may differ from the labels (pad/trim + warning)
    boundary_sigma: float = 1.0  # Gaussian sigma of the soft boundary target, in label frames
    background: List[str] = field(default_factory=lambda: ["background"])
    val_fraction: float = 0.15  # share of a fold's training videos held out for selection
    val_seed: int = 0  # seed of that carve-out (splits/val.split<k>.bundle overrides it)
    # Validation videos are drawn by whole groups, so no group (person, session) both trains
    # and validates: a regular expression searched in each video name; its first capture group
    # (or the whole match) names the video's group. None = every video is its own group.
    val_group: Optional[str] = None
    # per-channel (x - mean) / std of every stream, fitted on the fold's training videos and
    # stored in the checkpoint (twostream_das.model.standardize). Off in the paper presets (the
    # reference feeds the features as they are); init-config turns it on for new datasets.
    standardize: bool = False


@dataclass(frozen=True)
class EncoderConfig:
    num_blocks: int = 10
    width: int = 64
    kernel_size: int = 5
    channel_dropout: float = 0.5  # input dropout over whole feature channels
    frame_dropout: float = 0.5  # input dropout over whole frames
    dropout: float = 0.5  # inside the blocks
    cond_blocks: List[int] = field(default_factory=lambda: [5, 7, 9])  # 0-based block ids


@dataclass(frozen=True)
class DecoderConfig:
    num_blocks: int = 8
    width: int = 24
    kernel_size: int = 5
    time_emb_dim: int = 512
    dropout: float = 0.1


@dataclass(frozen=True)
class MaskConfig:
    strategies: List[MaskStrategy] = field(
        default_factory=lambda: [
            MaskStrategy.FULL,
            MaskStrategy.BOUNDARY,
            MaskStrategy.RANDOM_ACTION,
        ]
    )  # one drawn per training sample ("random selection"); one item = ablation
    # relative probabilities of ``strategies``, one each; null = uniform (the paper). DiffAct's
    # cond_types draw full, zero, boundary, random_action as 1 : 1 : 1 : 2 (docs/REPRODUCE.md).
    strategy_weights: Optional[List[float]] = None
    boundary_threshold: float = 0.3
    num_masked_actions: int = 1  # classes zeroed by random_action, drawn with replacement


@dataclass(frozen=True)
class DiffusionConfig:
    num_train_timesteps: int = 1000
    eta: float = 1.0  # DDIM stochasticity (0 = deterministic DDIM)
    signal_scale: float = 0.5  # x0 in {-s, +s}
    cosine_s: float = 0.008  # offset of the cosine schedule (Nichol & Dhariwal)


@dataclass(frozen=True)
class ModelConfig:
    attention_outside: AttentionOutside = AttentionOutside.EXACT
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)


@dataclass(frozen=True)
class LossConfig:
    encoder_ce: float = 0.5
    decoder_ce: float = 0.5
    encoder_smooth: float = 0.1
    decoder_smooth: float = 0.1
    decoder_boundary: float = 0.1
    smooth_clamp: float = 16.0  # MS-TCN's truncation of the squared log-prob difference
    # w_c = N / ((n_c + 10) * C) over the training labels (METHOD.md section 4, DiffAct's formula)
    class_weighting: bool = True
    # also with soft labels (loss.soft_label_sigma set)? METHOD.md section 4 and DiffAct: no
    # weights there
    soft_label_class_weighting: bool = False
    soft_label_sigma: Optional[float] = 1.4  # temporal smoothing of CE targets; None = off


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10000
    batch_size: int = 4  # real batches with padding masks
    accumulate_steps: int = 1  # optimizer step every N batches
    lr: float = 5e-4
    weight_decay: float = 0.0
    grad_clip: Optional[float] = None
    amp: bool = True  # mixed precision where the device supports it (CUDA bf16/fp16)
    seed: int = 0
    eval_every: int = 100  # epochs between validation passes (checkpoint candidates)
    checkpoint_every: int = 10  # epochs between resumable checkpoints
    select_metric: str = "mean"  # acc | edit | f1@10 | f1@25 | f1@50 | mean (of all five)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # a checkpoint whose weights start training (fine-tuning, e.g. one ``convert`` wrote): weights
    # only, the optimizer and the epochs start afresh; streams, dims, classes and shapes must match
    init_from: Optional[str] = None


@dataclass(frozen=True)
class FusionConfig:
    # stream -> weight, used until weights are selected on validation; empty = 1/n each.
    # Given, it names every stream of ``dataset.streams``.
    weights: Dict[str, float] = field(default_factory=dict)
    grid_step: float = 0.1  # grid over [0, 1]^n, one weight per stream (all-zero excluded)
    # measured in docs/FUSION.md: the last step's x0 is near one-hot whether right or wrong, so
    # the paper's weighted sum of it picks the more confident stream; the same sum of the
    # trajectory mean combines the evidence (the product rule gains more: a setting)
    input: FusionInput = FusionInput.TRAJECTORY
    rule: FusionRule = FusionRule.SUM
    # joint: the streams' x0 estimates are fused inside the sampler at every DDIM step, and the
    # weights are chosen among joint_grid_step points of the simplex (one sampling run on the
    # validation videos each); separate: the paper's late fusion of each stream's own output
    sampling: FusionSampling = FusionSampling.JOINT
    joint_grid_step: float = 0.25  # weights summing to 1: 0, 1/4, ..., 1 per stream
    # one temperature per stream fitted on validation (frame NLL) before fusing: P_s ** (1 / T_s)
    temperature: bool = False
    temperature_bounds: List[float] = field(default_factory=lambda: [0.05, 20.0])  # [min, max]
    prob_floor: float = 1e-8  # probabilities are clipped to this before a log (product, T)


@dataclass(frozen=True)
class PostprocessConfig:
    kind: PostprocessKind = PostprocessKind.PURGE
    # frames; at dataset.sample_rate r > 1 the median's window counts subsampled frames (it runs
    # on the offsets' average, METHOD.md section 6), purge's and mode's count full-rate frames
    window: int = 3
    select_on_validation: bool = False  # also choose kind/window on validation
    candidate_windows: List[int] = field(default_factory=lambda: [3, 5, 15, 30])


@dataclass(frozen=True)
class EvalConfig:
    average: Average = Average.POOLED
    # Views (videos x temporal offsets) per inference batch, grouped by length. null = auto:
    # on a CPU as many as fit in EVAL_CPU_PASS_FRAMES padded frames (at least one: short
    # videos are batched, GTEA-length ones run one at a time, each measured fastest there,
    # docs/PERFORMANCE.md), EVAL_ACCELERATOR_BATCH elsewhere. Same predictions either way.
    batch_size: Optional[int] = None
    seed: int = 0  # DDIM noise: one generator per (view, stream, sample), derived from this
    # The reverse process at inference: the sampler (a name of diffusion.samplers.SAMPLERS:
    # ddim, the paper's, with model.diffusion.eta; dpmpp_2m; dpmpp_2m_sde) and its number of
    # steps (the one key; replaces model.diffusion.num_inference_steps). docs/SAMPLERS.md.
    sampler: str = "ddim"
    steps: int = 25
    # Where the steps lie on the schedule, for every sampler (linear: DiffAct's grid).
    timestep_spacing: TimestepSpacing = TimestepSpacing.LINEAR
    samples: int = 1  # samples per video and stream, fused as the mean
    # Offset views sampled at dataset.sample_rate > 1: all (averaged, the paper) or middle.
    views: Views = Views.ALL
    # How many of the K samples the decoders run on at once (the encoders run once for all K).
    # null = auto: on a CPU as many as keep a pass within EVAL_CPU_PASS_FRAMES (views x
    # samples x padded frames; at least one: at GTEA length K = 4 in one pass cost more than
    # 4 passes, docs/PERFORMANCE.md), all K at once on an accelerator. The same result to
    # float tolerance either way.
    samples_per_pass: Optional[int] = None
    # Inference precision (validation, evaluate, predict), on every device; not train.amp.
    # bf16 changes the probabilities at bf16 precision; faster at Breakfast sizes on CPUs with
    # bf16. Replaces eval.cpu_bf16 (OLDER_KEYS).
    precision: Precision = Precision.FP32
    # review.csv's ranking. max_prob by default: on the demo's videos it found wrong frames
    # better than the mutual information at K = 1, 4 and 8 (docs/PERFORMANCE.md, README).
    review_score: ReviewScore = ReviewScore.MAX_PROB


FAST_SAMPLING: Mapping[str, Any] = MappingProxyType(
    {"sampler": "ddim", "steps": 2, "samples": 4, "views": Views.MIDDLE.value}
)
"""The eval.* sampling keys ``--fast`` (``fast=True`` in the API) sets: the measured
recommendation, see docs/SAMPLERS.md. On the fusion benchmark (3 seeds) DDIM with 2 steps and
K = 4 samples beats the paper's 25 steps with one sample on fused acc, Edit and F1@50 at 2.5x
less arithmetic; with the middle view alone at a sample rate of 8 it does 20x less than 25 steps
over all views for -3.8 F1@50. The presets keep the paper's (DDIM, 25 steps, one sample, all
views); an explicit ``--sampler``, ``--steps``, ``--views`` or ``--samples`` wins over this."""

EVAL_ACCELERATOR_BATCH = 4
"""``eval.batch_size: null`` on an accelerator (CUDA): views per inference batch."""

EVAL_CPU_PASS_FRAMES = 1024
"""``eval.batch_size`` / ``eval.samples_per_pass: null`` on a CPU: a decoder pass holds at most
this many frames, views x samples x padded frames (at least one view and one sample). Larger
passes fall out of the CPU's caches and cost more per frame than several small ones; smaller
ones pay per-op overhead (docs/PERFORMANCE.md, ``bench/bench_predict_folder.py --frames``)."""


@dataclass(frozen=True)
class Config:
    name: str = "custom"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


OLDER_KEYS: dict[str, str] = {
    "dataset.rgb": "dataset.streams.rgb",  # layout 1: the fixed rgb/flow sections
    "dataset.flow": "dataset.streams.flow",
    "fusion.rgb_weight": "fusion.weights.rgb",
    "fusion.flow_weight": "fusion.weights.flow",
    "eval.cpu_bf16": "eval.precision",
    "model.diffusion.num_inference_steps": "eval.steps",
}
"""Keys of older versions of this package -> the key that holds their value now. Config files,
overrides and stored configs that use one are refused in one line naming the upgrade
(``twostream-das upgrade FILE``, :mod:`twostream_das.tools.upgrade`, which translates them)."""

UPGRADE_COMMAND = "twostream-das upgrade"
"""The command that writes a file (or a run folder) of an older version in today's format."""


def run_folder_of(path: str | Path) -> Optional[Path]:
    """The training run folder that holds ``path`` as its ``config.yaml`` or as a checkpoint
    in its ``checkpoints/`` (a folder with a ``run.json``), or None."""
    path = Path(path)
    folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return folder if (folder / "run.json").is_file() else None


def upgrade_advice(path: str | Path) -> str:
    """How to write ``path`` of an older version in today's format, for an error message: the
    run folder as a whole when ``path`` is part of one (its config, run.json and checkpoints
    must agree), else the file alone."""
    run = run_folder_of(path)
    if run is not None:
        return (f"run `{UPGRADE_COMMAND} {run} --out NEW_RUN` to write its run folder in "
                "today's format, then use NEW_RUN")
    return f"run `{UPGRADE_COMMAND} {path}` to write it in today's format"

PRESETS: tuple[str, ...] = ("gtea", "50salads", "breakfast", "gtea_i3d", "50salads_i3d", "demo")
"""Shipped configs (``configs/<name>.yaml``). ``*_i3d``: the paper's preset with both streams
from the standard 2048-d I3D features (``features/``) instead of 768-d Br-Prompt RGB."""
SELECT_METRICS: tuple[str, ...] = ("acc", "edit", "f1@10", "f1@25", "f1@50", "mean")


def preset_path(name: str) -> Path:
    """Path of a preset YAML shipped inside the package (``configs/<name>.yaml``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return Path(str(resources.files("twostream_das") / "configs" / f"{name}.yaml"))


def load_config(source: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Build a :class:`Config` from defaults, a preset name or YAML file, and overrides.

    Args:
        source: a preset name (``gtea``, ``50salads``, ``breakfast``, ``demo``), a YAML path,
            or None for the defaults (which name no stream: set ``dataset.streams``).
        overrides: dotted ``key=value`` strings, e.g. ``["dataset.root=/data/gtea"]``. An
            override of ``dataset.streams`` (or ``fusion.weights``) as a whole replaces the
            section; ``dataset.streams.NAME=null`` drops stream NAME.

    Raises:
        ConfigError: naming the file or override and the offending key or value; a file in
            a key of an older version (:data:`OLDER_KEYS`) is refused, naming the upgrade.
    """
    merged = OmegaConf.structured(Config)
    if source is not None:
        path = preset_path(str(source)) if str(source) in PRESETS else Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (nor is it a preset name)")
        try:
            loaded = OmegaConf.to_container(OmegaConf.load(path))
        except (OmegaConfBaseException, ValueError, TypeError, yaml.YAMLError, OSError) as err:
            raise ConfigError(f"invalid config file {path}: {_first_line(err)}") from None
        refuse_older_keys(loaded, f"config file {path}", path)  # before merging
        try:
            merged = OmegaConf.merge(merged, OmegaConf.create(loaded))
        except (OmegaConfBaseException, ValueError, TypeError, yaml.YAMLError, OSError) as err:
            raise ConfigError(f"invalid config file {path}: {_first_line(err)}") from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        try:
            merged = _apply_override(merged, item)
        except ConfigError:
            raise
        except (OmegaConfBaseException, ValueError, TypeError, yaml.YAMLError) as err:
            raise ConfigError(f"invalid override {item!r}: {_first_line(err)}") from None
    return _to_object(merged)


def older_keys(data: Any) -> list[str]:
    """The :data:`OLDER_KEYS` that ``data`` (a nested plain dict) sets, in the table's order."""
    found = []
    for old in OLDER_KEYS:
        node = data
        for name in old.split("."):
            if not isinstance(node, dict) or name not in node:
                break
            node = node[name]
        else:
            found.append(old)
    return found


def refuse_older_keys(data: Any, where: str, path: str | Path | None = None) -> None:
    """Stop in one line when ``data`` uses a key of an older version.

    Args:
        where: what holds ``data``, for the message (``config file x.yaml``).
        path: the file to name in the upgrade command; None (an override): name the new keys.

    Raises:
        ConfigError: naming ``where``, the older keys and the upgrade command (or, for an
        override, the keys that replace them).
    """
    old = older_keys(data)
    if not old:
        return
    if path is None:
        new = ", ".join(OLDER_KEYS[k] for k in old)
        raise ConfigError(f"{where} uses {', '.join(old)}, a key of an older twostream_das; "
                          f"today it is {new}")
    raise ConfigError(
        f"{where} uses {', '.join(old)}, a key of an older twostream_das; {upgrade_advice(path)}"
    )


_REPLACED_WHOLE = ("dataset.streams", "fusion.weights")
"""Named sections an override replaces instead of merging into (else no stream could go)."""


def _apply_override(merged: Any, item: str) -> Any:
    key, value = item.split("=", 1)
    key = key.strip()
    data = OmegaConf.to_container(OmegaConf.from_dotlist([item]))
    refuse_older_keys(data, f"override {item!r}")
    layer = OmegaConf.create(data)
    parent, _, name = key.rpartition(".")
    if parent in _REPLACED_WHOLE and value.strip().lower() in ("null", "~", ""):
        section = OmegaConf.select(merged, parent)
        if name not in section:
            raise ConfigError(
                f"invalid override {item!r}: {parent} has no {name!r}; it has {list(section)}"
            )
        with open_dict(section), read_write(section):
            del section[name]
        return merged
    if key in _REPLACED_WHOLE:
        section = OmegaConf.select(merged, key)
        with open_dict(section), read_write(section):
            for name in list(section):
                del section[name]
    return OmegaConf.merge(merged, layer)


def from_dict(data: dict[str, Any]) -> Config:
    """Inverse of :func:`to_dict` (used when loading checkpoints); unknown keys are errors, and
    keys of older versions (:data:`OLDER_KEYS`) are refused (the checkpoint loader names the
    upgrade command first)."""
    refuse_older_keys(data, "stored config")
    try:
        return _to_object(OmegaConf.merge(OmegaConf.structured(Config), data))
    except (OmegaConfBaseException, ValueError) as err:
        raise ConfigError(f"invalid stored config: {_first_line(err)}") from None


def stream_names(cfg: Config) -> tuple[str, ...]:
    """The configured streams, in order."""
    return tuple(cfg.dataset.streams)


def check_fusion_weights(
    weights: Mapping[str, Any], streams: Optional[Sequence[str]] = None, key: str = "fusion weights"
) -> dict[str, float]:
    """The one check of late-fusion weights (``fusion.weights``, a stored selection,
    :class:`~twostream_das.choices.FusionWeights`): a number in [0, 1] per stream, not all 0,
    naming exactly ``streams`` (None: the streams ``weights`` names).

    Returns:
        stream -> float weight, in the order of ``streams``.

    Raises:
        ConfigError: naming ``key``, the stream and the value.
    """
    names = list(weights) if streams is None else list(streams)
    if not names or set(weights) != set(names):
        raise ConfigError(
            f"{key} names {sorted(weights)}; expected every stream of dataset.streams, "
            f"{names}, and no other key"
        )
    out = {}
    for name in names:
        value = weights[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ConfigError(f"{key}.{name} = {value!r} is invalid; expected in [0, 1]")
        out[name] = float(value)
    if not any(out.values()):
        raise ConfigError(f"{key} {out} are all 0; expected one > 0")
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config (or any of its sections) as a plain dict of builtins; enums become strings."""
    return _plain(dataclasses.asdict(cfg))


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)))


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _to_object(node: Any) -> Config:
    cfg = OmegaConf.to_object(node)
    assert isinstance(cfg, Config)
    validate(cfg)
    return cfg


def _is_regex(text: str) -> bool:
    try:
        re.compile(text)
    except re.error:
        return False
    return bool(text)


def validate(cfg: Config) -> None:
    """Range checks that types alone cannot express."""
    enc, diff = cfg.model.encoder, cfg.model.diffusion
    rules: list[tuple[str, Callable[[Any], bool], str]] = [
        ("dataset.fps", _finite_positive, "a finite number > 0"),
        ("dataset.sample_rate", lambda v: v >= 1, ">= 1"),
        ("dataset.length_tolerance", lambda v: v >= 0, ">= 0"),
        ("dataset.val_fraction", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
        ("dataset.val_seed", lambda v: v >= 0, ">= 0"),
        ("fusion.joint_grid_step", lambda v: 0.0 < v <= 0.5, "in (0, 0.5]"),
        ("dataset.val_group", lambda v: v is None or _is_regex(v),
         "null or a regular expression over video names"),
        ("dataset.boundary_sigma", _finite_positive, "a finite number > 0"),
        ("dataset.background", lambda v: len(set(v)) == len(v) and all(v), "distinct names"),
        ("model.encoder.num_blocks", lambda v: v >= 1, ">= 1"),
        ("model.encoder.width", lambda v: v >= 1, ">= 1"),
        ("model.encoder.kernel_size", lambda v: v >= 1 and v % 2 == 1, "odd and >= 1"),
        ("model.encoder.channel_dropout", _probability, "in [0, 1)"),
        ("model.encoder.frame_dropout", _probability, "in [0, 1)"),
        ("model.encoder.dropout", _probability, "in [0, 1)"),
        ("model.encoder.cond_blocks",
         lambda v: len(v) > 0 and all(0 <= b < enc.num_blocks for b in v),
         f"non-empty, each in [0, {enc.num_blocks - 1}]"),
        ("model.decoder.num_blocks", lambda v: v >= 1, ">= 1"),
        ("model.decoder.width", lambda v: v >= 1, ">= 1"),
        ("model.decoder.kernel_size", lambda v: v >= 1 and v % 2 == 1, "odd and >= 1"),
        ("model.decoder.time_emb_dim", lambda v: v >= 4, ">= 4"),
        ("model.decoder.dropout", _probability, "in [0, 1)"),
        ("model.masks.strategies", lambda v: len(v) > 0, "at least one strategy"),
        ("model.masks.boundary_threshold", lambda v: 0 <= v <= 1, "in [0, 1]"),
        ("model.masks.num_masked_actions", lambda v: v >= 1, ">= 1"),
        ("model.masks.strategy_weights",
         lambda v: v is None or (len(v) == len(cfg.model.masks.strategies)
                                 and all(math.isfinite(w) and w >= 0 for w in v) and sum(v) > 0),
         "null or one finite weight >= 0 per model.masks.strategies entry, not all 0"),
        ("model.diffusion.num_train_timesteps", lambda v: v >= 1, ">= 1"),
        ("model.diffusion.eta", lambda v: 0 <= v < float("inf"), ">= 0"),
        ("model.diffusion.signal_scale", _finite_positive, "a finite number > 0"),
        ("model.diffusion.cosine_s", _finite_positive, "a finite number > 0"),
        *((f"loss.{k}", _finite_non_negative, "a finite number >= 0")
          for k in ("encoder_ce", "decoder_ce", "encoder_smooth", "decoder_smooth",
                    "decoder_boundary")),
        ("loss.smooth_clamp", _finite_positive, "a finite number > 0"),
        ("loss.soft_label_sigma", _optional(_finite_positive), "null or a finite number > 0"),
        ("train.epochs", lambda v: v >= 1, ">= 1"),
        ("train.batch_size", lambda v: v >= 1, ">= 1"),
        ("train.accumulate_steps", lambda v: v >= 1, ">= 1"),
        ("train.lr", _finite_positive, "a finite number > 0"),
        ("train.weight_decay", _finite_non_negative, "a finite number >= 0"),
        ("train.grad_clip", _optional(_finite_positive),
         "null (no clipping) or a finite number > 0"),
        ("train.seed", lambda v: v >= 0, ">= 0"),
        ("train.eval_every", lambda v: v >= 1, ">= 1"),
        ("train.checkpoint_every", lambda v: v >= 1, ">= 1"),
        ("train.select_metric", lambda v: v in SELECT_METRICS, "|".join(SELECT_METRICS)),
        ("train.init_from", lambda v: v is None or bool(v.strip()), "null or a checkpoint file"),
        ("fusion.grid_step", lambda v: 0 < v <= 1, "in (0, 1]"),
        ("fusion.temperature_bounds", lambda v: len(v) == 2 and 0 < v[0] < v[1],
         "[min, max] with 0 < min < max"),
        ("fusion.prob_floor", lambda v: 0 < v < 1, "in (0, 1)"),
        ("postprocess.window", lambda v: v >= 1, ">= 1"),
        ("postprocess.candidate_windows", lambda v: len(v) > 0 and all(w >= 1 for w in v),
         "non-empty, each >= 1"),
        ("eval.batch_size", lambda v: v is None or v >= 1, "null or >= 1"),
        ("eval.seed", lambda v: v >= 0, ">= 0"),
        ("eval.sampler", lambda v: bool(v.strip()),
         "a sampler's name (ddim, dpmpp_2m, dpmpp_2m_sde)"),
        ("eval.steps", lambda v: 0 < v <= diff.num_train_timesteps,
         "in [1, model.diffusion.num_train_timesteps]"),
        ("eval.samples", lambda v: v >= 1, ">= 1"),
        ("eval.samples_per_pass", lambda v: v is None or v >= 1, "null or >= 1"),
    ]
    for key, ok, expected in rules:
        value = _lookup(cfg, key)
        if not ok(value):
            raise ConfigError(f"{key} = {_plain(value)!r} is invalid; expected {expected}")
    _validate_streams(cfg)


def _validate_streams(cfg: Config) -> None:
    streams = cfg.dataset.streams
    if not streams:
        raise ConfigError(
            "dataset.streams is empty; expected at least one named stream, e.g. "
            "dataset.streams: {rgb: {source: folder, folder: features_rgb}} (see the presets)"
        )
    for name, spec in streams.items():
        if not name or not set(name) <= STREAM_NAME_CHARS or name == "fused":
            raise ConfigError(
                f"dataset.streams name {name!r} is invalid; expected lower-case letters, digits, "
                f"'_' or '-' (and not 'fused', the name of the fusion's results)"
            )
        if spec.source is FeatureSource.FOLDER and not spec.folder:
            raise ConfigError(
                f"dataset.streams.{name}.folder = '' is invalid; expected the folder of its "
                f".npy files under dataset.root (source folder)"
            )
        if spec.dim is not None and spec.dim < 1:
            raise ConfigError(
                f"dataset.streams.{name}.dim = {spec.dim} is invalid; expected null or >= 1"
            )
    if cfg.fusion.weights:
        check_fusion_weights(cfg.fusion.weights, list(streams), "fusion.weights")


def _finite_positive(value: float) -> bool:
    return 0 < value < math.inf


def _finite_non_negative(value: float) -> bool:
    return 0 <= value < math.inf


def _probability(value: float) -> bool:
    return 0 <= value < 1


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """``check`` for a value that may also be None (off)."""
    return lambda value: value is None or check(value)


def _lookup(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg
