"""Files of older versions of twostream_das in today's formats: the one door for old formats.

The loaders read today's formats only. A config file, an override or a checkpoint of an older
version is refused in one line that names ``twostream-das upgrade FILE``; this module is that
command. It writes a new file and never replaces one:

- config layout 1 -> 2: the fixed ``dataset.rgb`` / ``dataset.flow`` sections become streams
  ``rgb`` and ``flow`` of ``dataset.streams``; ``fusion.rgb_weight`` / ``fusion.flow_weight``
  become ``fusion.weights``;
- ``eval.cpu_bf16: true|false`` -> ``eval.precision: bf16|fp32``;
- ``model.diffusion.num_inference_steps`` -> ``eval.steps`` (where ``eval.steps`` was set, not
  null, it won then and is kept);
- checkpoint version 1 -> :data:`~twostream_das.checkpoint.CHECKPOINT_VERSION`: its config as
  above (weights and everything else were already keyed by stream name), and
  ``dataset.standardize`` as the weights say (on exactly when they hold the statistics).

``config.OLDER_KEYS`` lists the keys the loaders refuse; every one of them is translated here
(a test says so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

from ..atomic import atomic_create, atomic_create_text
from ..checkpoint import CHECKPOINT_VERSION, OLDER_VERSIONS, torch_load_safely
from ..config import Precision, from_dict, older_keys
from ..errors import CheckpointError, ConfigError
from ..model.standardize import has_stored_statistics

logger = logging.getLogger(__name__)

UPGRADED_SUFFIX = ".upgraded"
"""Inserted before the file's extension for the default target (``best.pt`` ->
``best.upgraded.pt``)."""

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's files are zip archives


@dataclass(frozen=True)
class Upgraded:
    """What :func:`upgrade_file` did.

    Attributes:
        target: the file written; None when ``source`` was already in today's format.
        changes: one line per translation (``eval.cpu_bf16 = true -> eval.precision = bf16``).
    """

    source: Path
    target: Optional[Path]
    changes: tuple[str, ...]


def upgrade_config_dict(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A config (a nested plain dict, whole or partial) in today's keys, and what changed.

    Raises:
        ConfigError: an older key with a value it never had, or given together with its
            replacement.
    """
    out = _copy(data)
    changes: list[str] = []
    for step in (_layout_1, _cpu_bf16, _num_inference_steps):
        changes += step(out)
    assert not older_keys(out), older_keys(out)
    return out, changes


def _copy(data: Any) -> Any:
    return {k: _copy(v) for k, v in data.items()} if isinstance(data, dict) else data


def _layout_1(out: dict[str, Any]) -> list[str]:
    """``dataset.rgb`` / ``dataset.flow`` -> ``dataset.streams``; the fusion weights alike."""
    changes = []
    dataset, fusion = out.get("dataset"), out.get("fusion")
    if isinstance(dataset, dict) and ("rgb" in dataset or "flow" in dataset):
        if "streams" in dataset:
            raise ConfigError("dataset.rgb / dataset.flow (layout 1) and dataset.streams are "
                              "both set; keep dataset.streams")
        dataset["streams"] = {k: dataset.pop(k) for k in ("rgb", "flow") if k in dataset}
        changes.append(f"dataset.{{{', '.join(dataset['streams'])}}} -> dataset.streams")
    if isinstance(fusion, dict) and ("rgb_weight" in fusion or "flow_weight" in fusion):
        if "weights" in fusion:
            raise ConfigError("fusion.rgb_weight / fusion.flow_weight (layout 1) and "
                              "fusion.weights are both set; keep fusion.weights")
        fusion["weights"] = {
            k: fusion.pop(f"{k}_weight") for k in ("rgb", "flow") if f"{k}_weight" in fusion
        }
        changes.append("fusion.rgb_weight / flow_weight -> fusion.weights")
    return changes


def _cpu_bf16(out: dict[str, Any]) -> list[str]:
    """``eval.cpu_bf16: true|false`` -> ``eval.precision: bf16|fp32``."""
    section = out.get("eval")
    if not isinstance(section, dict) or "cpu_bf16" not in section:
        return []
    value = section.pop("cpu_bf16")
    if not isinstance(value, bool):
        raise ConfigError(f"eval.cpu_bf16 = {value!r} is invalid; expected true or false")
    if "precision" in section:
        raise ConfigError("eval.cpu_bf16 (an older key) and eval.precision are both set; keep "
                          "eval.precision")
    section["precision"] = (Precision.BF16 if value else Precision.FP32).value
    return [f"eval.cpu_bf16 = {str(value).lower()} -> eval.precision = {section['precision']}"]


def _num_inference_steps(out: dict[str, Any]) -> list[str]:
    """``model.diffusion.num_inference_steps`` -> ``eval.steps`` (an ``eval.steps`` that was set
    won over it then and still does; ``eval.steps: null`` meant the model's number)."""
    diffusion = (out.get("model") or {}).get("diffusion")
    section = out.get("eval")
    changes = []
    if isinstance(diffusion, dict) and "num_inference_steps" in diffusion:
        value = diffusion.pop("num_inference_steps")
        section = out.setdefault("eval", {}) if section is None else section
        if section.get("steps") is None:
            section["steps"] = value
        changes.append(f"model.diffusion.num_inference_steps = {value} -> eval.steps = "
                       f"{section['steps']}")
    if isinstance(section, dict) and "steps" in section and section["steps"] is None:
        del section["steps"]  # null was "the model's number"; absent now means the default
        changes.append("eval.steps = null -> eval.steps (the default)")
    return changes


def upgrade_checkpoint(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    """A checkpoint's contents (``torch.load``'s dict) in today's format, and what changed.

    Raises:
        CheckpointError: not a twostream_das checkpoint, a version this package never wrote,
            or a config that does not parse once upgraded (naming ``where``).
    """
    version = raw.get("version")
    if not isinstance(raw.get("config"), dict) or not isinstance(raw.get("weights"), dict):
        raise CheckpointError(f"{where} lacks a config or weights; is it a twostream_das "
                              "checkpoint?")
    if version not in (*OLDER_VERSIONS, CHECKPOINT_VERSION):
        raise CheckpointError(f"{where} has version {version!r}; expected one of "
                              f"{', '.join(map(str, (*OLDER_VERSIONS, CHECKPOINT_VERSION)))}")
    try:
        config, changes = upgrade_config_dict(raw["config"])
    except ConfigError as err:
        raise CheckpointError(f"{where}: {err}") from None
    stored = has_stored_statistics(raw["weights"])
    if bool((config.get("dataset") or {}).get("standardize", False)) != stored:
        config.setdefault("dataset", {})["standardize"] = stored
        changes.append(f"dataset.standardize -> {str(stored).lower()} (the weights "
                       f"{'hold' if stored else 'lack'} its statistics)")
    if version != CHECKPOINT_VERSION:
        changes.insert(0, f"version {version} -> {CHECKPOINT_VERSION}")
    try:
        from_dict(config)
    except ConfigError as err:
        raise CheckpointError(f"{where}, once upgraded: {err}") from None
    return {**raw, "config": config, "version": CHECKPOINT_VERSION}, changes


def default_target(source: Path) -> Path:
    """``best.pt`` -> ``best.upgraded.pt``, beside it."""
    return source.with_name(f"{source.stem}{UPGRADED_SUFFIX}{source.suffix}")


def upgrade_file(source: str | Path, out: str | Path | None = None) -> Upgraded:
    """Write config file or checkpoint ``source`` in today's format to ``out`` (default
    :func:`default_target`); nothing is written when it already is in today's format.

    Raises:
        CheckpointError / ConfigError: ``source`` is missing or unreadable, the target exists
            (never replaced), or the contents cannot be upgraded; naming the file.
    """
    source = Path(source)
    if not source.is_file():
        raise ConfigError(f"{source} does not exist; expected a config file or a checkpoint")
    target = Path(out) if out is not None else default_target(source)
    if _is_checkpoint(source):
        raw = torch_load_safely(source, "checkpoint")
        if not isinstance(raw, dict):
            raise CheckpointError(f"checkpoint {source} holds {type(raw).__name__}; expected a "
                                  "dict")
        upgraded, changes = upgrade_checkpoint(raw, f"checkpoint {source}")
        write: Callable[[Path], Any] = lambda path: atomic_create(  # noqa: E731
            path, lambda handle: torch.save(upgraded, handle)
        )
    else:
        data = _read_yaml(source)
        upgraded, changes = upgrade_config_dict(data)
        text = yaml.safe_dump(upgraded, sort_keys=False)
        write = lambda path: atomic_create_text(path, text)  # noqa: E731
    if not changes:
        return Upgraded(source, None, ())
    try:
        write(target)
    except FileExistsError:
        raise ConfigError(f"{target} exists; the upgrade writes a new file and never replaces "
                          "one (name another with --out)") from None
    logger.info("%s: %s", source, "; ".join(changes))
    return Upgraded(source, target, tuple(changes))


def _is_checkpoint(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"config file {path} cannot be read: {first}; expected YAML or a "
                          "checkpoint") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} holds {type(data).__name__}; expected a mapping "
                          "of config sections")
    return data
