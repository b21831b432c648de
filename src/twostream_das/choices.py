"""The choices stored beside a model's weights, one small frozen value each.

- :class:`FusionWeights`: one late-fusion weight per stream (METHOD.md section 5);
- :class:`PostprocessChoice`: the post-processing method and its window;
- :class:`Selection`: what validation chose for a checkpoint: the epoch, the fusion weights, the
  post-processing (and the fusion temperatures, the selection metric, its score and the
  validation metrics under these choices).

Each is validated once, when it is built (a wrong value cannot exist), and has exactly one
``to_dict`` (plain builtins, for checkpoints and JSON files) and one ``from_dict`` (its inverse,
which names the missing or bad key). Checkpoints, ``selection.json``, validation, ``evaluate``,
``predict``, the Python API and the report all read and write them through here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from .config import SELECT_METRICS, Config, PostprocessKind, check_fusion_weights, stream_names
from .errors import ConfigError

StreamMetrics = dict[str, dict[str, float]]
"""``{<stream>: M, ..., "fused": M}`` (e.g. ``{"rgb": M, "flow": M, "fused": M}``) with M a
dict over :data:`twostream_das.metrics.METRIC_KEYS`."""


@dataclass(frozen=True, eq=False)
class FusionWeights(Mapping[str, float]):
    """stream -> late-fusion weight, in stream order: each in [0, 1], not all 0
    (:func:`~twostream_das.config.check_fusion_weights`, the one check, also used for
    ``fusion.weights``).

    A read-only mapping, so it goes wherever ``{stream: weight}`` is expected and compares equal
    to a dict of the same items.
    """

    weights: Mapping[str, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", check_fusion_weights(self.weights))

    @classmethod
    def of(
        cls,
        weights: Mapping[str, float],
        streams: Optional[Sequence[str]] = None,
        key: str = "fusion weights",
    ) -> FusionWeights:
        """``weights`` checked to name exactly ``streams`` (None: any), in that order;
        errors name ``key``."""
        return cls(check_fusion_weights(weights, streams, key))

    @classmethod
    def uniform(cls, streams: Sequence[str]) -> FusionWeights:
        """1/n per stream."""
        return cls({s: 1.0 / len(streams) for s in streams})

    @classmethod
    def from_config(cls, cfg: Config) -> FusionWeights:
        """``fusion.weights``, or 1/n per stream when it is empty (used until validation chose)."""
        names = stream_names(cfg)
        if cfg.fusion.weights:
            return cls.of(cfg.fusion.weights, names, "fusion.weights")
        return cls.uniform(names)

    def to_dict(self) -> dict[str, float]:
        return {s: float(w) for s, w in self.weights.items()}

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], streams: Optional[Sequence[str]] = None
    ) -> FusionWeights:
        return cls.of(_mapping(data, "fusion_weights"), streams, "fusion_weights")

    def __getitem__(self, stream: str) -> float:
        return self.weights[stream]

    def __iter__(self) -> Iterator[str]:
        return iter(self.weights)

    def __len__(self) -> int:
        return len(self.weights)

    def __repr__(self) -> str:
        return f"FusionWeights({self.to_dict()})"


@dataclass(frozen=True)
class PostprocessChoice:
    """A post-processing method and its window (frames, >= 1)."""

    kind: PostprocessKind
    window: int

    def __post_init__(self) -> None:
        if not isinstance(self.kind, PostprocessKind):
            raise ConfigError(
                f"postprocess kind {self.kind!r} is invalid; expected one of "
                f"{', '.join(k.value for k in PostprocessKind)}"
            )
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(
                f"postprocess window {self.window!r} is invalid; expected an integer >= 1"
            )

    @classmethod
    def from_config(cls, cfg: Config) -> PostprocessChoice:
        return cls(cfg.postprocess.kind, cfg.postprocess.window)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "window": int(self.window)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostprocessChoice:
        data = _mapping(data, "postprocess")
        kind = _require(data, "kind", "postprocess")
        window = _require(data, "window", "postprocess")
        try:
            kind = PostprocessKind(kind)
        except ValueError:
            pass  # __post_init__ names the value and the kinds
        if isinstance(window, float) and window.is_integer():
            window = int(window)
        return cls(kind, window)


@dataclass(frozen=True)
class Selection:
    """What validation chose for one checkpoint.

    Attributes:
        epoch: the checkpoint's epoch (>= 0).
        fusion_weights: one weight per stream (a plain mapping is checked into
            :class:`FusionWeights`).
        postprocess: the post-processing.
        metric: ``train.select_metric``.
        score: validation score of the fused prediction with these choices (NaN: nothing was
            selected, e.g. no validation videos).
        metrics: validation metrics with these choices.
        temperatures: stream -> fitted temperature > 0 (``fusion.temperature``); {} = off.
    """

    epoch: int
    fusion_weights: FusionWeights
    postprocess: PostprocessChoice
    metric: str
    score: float
    metrics: StreamMetrics = field(default_factory=dict)
    temperatures: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.fusion_weights, FusionWeights):
            object.__setattr__(self, "fusion_weights", FusionWeights(self.fusion_weights))
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int) or self.epoch < 0:
            raise ConfigError(
                f"selection epoch {self.epoch!r} is invalid; expected an integer >= 0"
            )
        if not isinstance(self.postprocess, PostprocessChoice):
            raise ConfigError(
                f"selection postprocess {self.postprocess!r} is invalid; expected a "
                "PostprocessChoice"
            )
        if self.metric not in SELECT_METRICS:
            raise ConfigError(
                f"selection metric {self.metric!r} is invalid; expected one of "
                f"{'|'.join(SELECT_METRICS)}"
            )
        unknown = sorted(set(self.temperatures) - set(self.fusion_weights))
        if unknown:
            raise ConfigError(
                f"selection temperatures name {unknown}, which have no fusion weight; expected "
                f"streams of {list(self.fusion_weights)}"
            )
        for stream, value in self.temperatures.items():
            if not 0 < value < math.inf:
                raise ConfigError(
                    f"selection temperature of {stream} = {value!r} is invalid; expected a "
                    "finite number > 0"
                )

    @classmethod
    def configured(cls, cfg: Config, epoch: int) -> Selection:
        """The configured choices, unselected (no validation videos): score NaN."""
        return cls(
            epoch,
            FusionWeights.from_config(cfg),
            PostprocessChoice.from_config(cfg),
            cfg.train.select_metric,
            float("nan"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": int(self.epoch),
            "fusion_weights": self.fusion_weights.to_dict(),
            "temperatures": {s: float(t) for s, t in self.temperatures.items()},
            "postprocess": self.postprocess.to_dict(),
            "metric": self.metric,
            "score": float(self.score),
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], streams: Optional[Sequence[str]] = None
    ) -> Selection:
        """Inverse of :meth:`to_dict`; ``streams``: the fusion weights must name exactly these
        (in that order). Selections stored before ``temperatures`` existed read as {}."""
        data = _mapping(data, "selection")
        epoch = _require(data, "epoch", "selection")
        temperatures = _mapping(data.get("temperatures") or {}, "selection temperatures")
        return cls(
            epoch=int(epoch) if isinstance(epoch, float) and epoch.is_integer() else epoch,
            fusion_weights=FusionWeights.from_dict(
                _require(data, "fusion_weights", "selection"), streams
            ),
            postprocess=PostprocessChoice.from_dict(_require(data, "postprocess", "selection")),
            metric=_require(data, "metric", "selection"),
            score=_number(_require(data, "score", "selection"), "selection score"),
            metrics=dict(_mapping(data.get("metrics") or {}, "selection metrics")),
            temperatures={
                s: _number(t, f"selection temperature of {s}") for s, t in temperatures.items()
            },
        )


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} is {type(data).__name__} {data!r}; expected a mapping")
    return data


def _require(data: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in data:
        raise ConfigError(f"{what} lacks {key!r} (has {sorted(data)})")
    return data[key]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} = {value!r} is invalid; expected a number")
    return float(value)
