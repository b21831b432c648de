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

A training run folder (:mod:`twostream_das.runs`) is upgraded as a whole into a new folder
(:func:`upgrade_run`), since resuming compares its ``run.json``, ``config.yaml`` and checkpoints
with each other: ``config.yaml`` and the config in ``run.json`` as above, every checkpoint
(``*.pt``) as above, and ``dataset.standardize`` of the configs as its last (else best)
checkpoint's weights say. Everything else (``split.json``, ``metrics.csv``, ``selection.json``,
``results.json``, ``predictions/``, ``tensorboard/``, ``train.log``, other files) is copied as it
is: those record what the run did and are the same in today's format; the lock file and
half-written temporaries are left out. The new folder is built in a hidden temporary folder
beside it and renamed into place, so it appears whole or not at all.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

from ..atomic import atomic_create, atomic_create_text, current_umask
from ..checkpoint import CHECKPOINT_VERSION, OLDER_VERSIONS, torch_load_safely
from ..config import Precision, from_dict, older_keys
from ..errors import CheckpointError, ConfigError
from ..model.standardize import has_stored_statistics
from ..runs import LOCK_FILE, RunDir, read_json

logger = logging.getLogger(__name__)

UPGRADED_SUFFIX = ".upgraded"
"""Inserted before the file's extension for the default target (``best.pt`` ->
``best.upgraded.pt``)."""

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's files are zip archives


@dataclass(frozen=True)
class Upgraded:
    """What :func:`upgrade_file` did.

    Attributes:
        target: the file (or run folder) written; None when ``source`` was already in today's
            format.
        changes: one line per translation (``eval.cpu_bf16 = true -> eval.precision = bf16``);
            for a run folder one line per upgraded file (``checkpoints/last.pt: version 1 ->
            2; ...``).
        copied: for a run folder, the files copied as they are (relative paths).
    """

    source: Path
    target: Optional[Path]
    changes: tuple[str, ...]
    copied: tuple[str, ...] = ()


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
    """``best.pt`` -> ``best.upgraded.pt``, beside it; run folder ``fold1_seed0`` ->
    ``fold1_seed0.upgraded``."""
    if source.is_dir():
        return source.with_name(f"{source.name}{UPGRADED_SUFFIX}")
    return source.with_name(f"{source.stem}{UPGRADED_SUFFIX}{source.suffix}")


def upgrade_file(source: str | Path, out: str | Path | None = None) -> Upgraded:
    """Write config file or checkpoint ``source`` in today's format to ``out`` (default
    :func:`default_target`); nothing is written when it already is in today's format. A run
    folder goes to :func:`upgrade_run`.

    Raises:
        CheckpointError / ConfigError: ``source`` is missing or unreadable, the target exists
            (never replaced), or the contents cannot be upgraded; naming the file.
    """
    source = Path(source)
    if source.is_dir():
        return upgrade_run(source, out)
    if not source.is_file():
        raise ConfigError(f"{source} does not exist; expected a config file, a checkpoint or a "
                          "run folder")
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


def upgrade_run(source: str | Path, out: str | Path | None = None) -> Upgraded:
    """Write training run folder ``source`` in today's format to a new folder ``out`` (default
    :func:`default_target`; it must not exist or be empty); nothing is written when the folder
    already is in today's format. What is upgraded and what copied: the module docstring.

    Raises:
        CheckpointError / ConfigError: ``source`` is not a run folder, one of its files cannot be
            upgraded (naming it), or ``out`` is inside it, a file or a folder that is not empty.
    """
    run = RunDir(Path(source))
    if not run.run_json.is_file():
        raise ConfigError(f"{run.root} is a folder without run.json; expected a config file, a "
                          "checkpoint or a twostream_das run folder")
    files = _run_files(run.root)
    upgraded: dict[str, tuple[Callable[[Path], Any], list[str]]] = {}
    configs: dict[str, dict[str, Any]] = {}  # relative path -> the config it will hold
    for rel in files:
        found = _upgrade_run_file(run.root, rel)
        if found is not None:
            upgraded[rel], configs[rel] = found[:2], found[2]
    _agree_on_standardize(configs, upgraded)
    changed = {rel: found for rel, found in upgraded.items() if found[1]}
    if not changed:
        return Upgraded(run.root, None, ())
    target = Path(out) if out is not None else default_target(run.root)
    _check_target_folder(run.root, target)
    _write_folder(run.root, target, files, {rel: found[0] for rel, found in changed.items()})
    changes = tuple(f"{rel}: {'; '.join(found[1])}" for rel, found in changed.items())
    logger.info("%s -> %s: %s", run.root, target, " | ".join(changes))
    copied = tuple(rel for rel in files if rel not in changed)
    return Upgraded(run.root, target, changes, copied)


def _run_files(root: Path) -> list[str]:
    """Files of run folder ``root`` (relative, sorted), without its lock file and half-written
    temporaries (``.<name>.<random>.tmp``)."""
    return sorted(
        str(path.relative_to(root)) for path in root.rglob("*")
        if path.is_file() and path.name != LOCK_FILE
        and not (path.name.startswith(".") and path.name.endswith(".tmp"))
    )


def _upgrade_run_file(
    root: Path, rel: str
) -> Optional[tuple[Callable[[Path], Any], list[str], dict[str, Any]]]:
    """``(write, changes, config)`` for file ``rel`` of run folder ``root`` when it holds a
    config (config.yaml, run.json, a checkpoint), else None (it is copied as it is)."""
    path = root / rel
    if rel == "config.yaml":
        config, changes = upgrade_config_dict(_read_yaml(path))
        return (lambda to: to.write_text(yaml.safe_dump(config, sort_keys=False)),
                changes, config)
    if rel == "run.json":
        stored = read_json(path)
        if not isinstance(stored.get("config"), dict):
            return None
        config, changes = upgrade_config_dict(stored["config"])
        try:
            from_dict(config)
        except ConfigError as err:
            raise ConfigError(f"{path}, once upgraded: {err}") from None
        data = {**stored, "config": config}
        return (lambda to: to.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"),
                changes, config)
    if path.suffix == ".pt" and _is_checkpoint(path):
        raw = torch_load_safely(path, "checkpoint")
        if not isinstance(raw, dict):
            raise CheckpointError(f"checkpoint {path} holds {type(raw).__name__}; expected a "
                                  "dict")
        ckpt, changes = upgrade_checkpoint(raw, f"checkpoint {path}")
        return (lambda to: torch.save(ckpt, to), changes, ckpt["config"])
    return None


def _agree_on_standardize(
    configs: dict[str, dict[str, Any]],
    upgraded: dict[str, tuple[Callable[[Path], Any], list[str]]],
) -> None:
    """Give config.yaml and run.json the ``dataset.standardize`` of the last (else the best)
    checkpoint, which its weights decide (:func:`upgrade_checkpoint`): resuming compares them."""
    weights = next((rel for rel in ("checkpoints/last.pt", "checkpoints/best.pt")
                    if rel in configs), None)
    if weights is None:
        return
    value = bool((configs[weights].get("dataset") or {}).get("standardize", False))
    for rel in ("config.yaml", "run.json"):
        if rel not in configs:
            continue
        dataset = configs[rel].setdefault("dataset", {})
        if bool(dataset.get("standardize", False)) != value:
            dataset["standardize"] = value
            upgraded[rel][1].append(f"dataset.standardize -> {str(value).lower()} (as "
                                    f"{weights}'s weights say)")


def _check_target_folder(source: Path, target: Path) -> None:
    """Refuse a target inside ``source``, a file, or a folder that is not empty."""
    if target.resolve() == source.resolve() or source.resolve() in target.resolve().parents:
        raise ConfigError(f"{target} is inside the run folder {source}; the upgrade writes a "
                          "new folder beside it (name another with --out)")
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} exists and is a file; the upgrade writes a new folder and "
                          "never replaces anything (name another with --out)")
    if target.is_dir() and any(target.iterdir()):
        raise ConfigError(f"{target} exists and is not empty; the upgrade writes a new folder "
                          "and never replaces one (name another with --out)")


def _write_folder(
    source: Path, target: Path, files: list[str], writes: dict[str, Callable[[Path], Any]]
) -> None:
    """Build ``target`` in a hidden temporary folder beside it: ``writes`` for the upgraded
    files, the other ``files`` copied; then rename it into place (it appears whole or not at
    all; an empty ``target`` is replaced by the rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        for folder in sorted({p for p in source.rglob("*") if p.is_dir()}):
            (tmp / folder.relative_to(source)).mkdir(parents=True, exist_ok=True)
        for rel in files:
            if rel in writes:
                writes[rel](tmp / rel)
            else:
                shutil.copy2(source / rel, tmp / rel)
        try:
            os.rename(tmp, target)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise ConfigError(f"{target} exists and is not empty; the upgrade writes a new "
                              "folder and never replaces one (name another with --out)") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
