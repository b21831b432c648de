"""Checkpoints: one self-describing file per model state, safe to load.

A checkpoint holds only builtins and tensors, so ``torch.load(weights_only=True)`` reads it and
no other file is needed to rebuild the model:

- ``weights``: the :class:`~twostream_das.model.multi_stream.MultiStreamModel` state dict
  (``streams.<name>.`` per stream; with ``dataset.standardize`` also the training videos'
  per-channel statistics ``standardizer.<name>_mean`` / ``_std``);
- ``optimizer``: the optimizer state dict (resumable ``last.pt`` only, else None);
- ``config``: the run's :class:`~twostream_das.config.Config` as a plain dict;
- ``label_names``: class names in id order (the label map);
- ``stream_dims``: feature dimension of each stream, in the config's stream order, e.g.
  ``{"rgb": 768, "flow": 1024}``;
- ``epoch``: completed training epochs;
- ``metrics``: validation metrics at this epoch (``{<stream>: M, ..., "fused": M}``);
- ``selection``: what was chosen on validation (:class:`~twostream_das.choices.Selection`:
  epoch, fusion weights, post-processing), once chosen; read back checked, its fusion weights
  naming exactly the checkpoint's streams;
- ``progress``: training bookkeeping needed to resume (best score so far, finished flag, fold,
  video names of the train/validation carve-out);
- ``rng``: random-number state. Training derives every generator from ``(seed, epoch)`` (see
  :mod:`twostream_das.workflows.training`), so this only records the seed that makes resume exact;
- ``version``: :data:`CHECKPOINT_VERSION`. Only today's version is read: a file of an older
  version (1: fixed RGB/FLOW config sections, before named streams), or one whose config uses a
  key of an older version (:data:`twostream_das.config.OLDER_KEYS`), is refused in one line
  naming ``twostream-das upgrade FILE`` (``twostream-das upgrade RUN --out NEW_RUN`` for a
  checkpoint of run folder RUN), which writes it in today's format
  (:mod:`twostream_das.tools.upgrade`).

Files are written atomically (:func:`twostream_das.atomic.atomic_write`): to a temporary file in
the same folder, fsynced, then ``os.replace``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from .atomic import atomic_write
from .choices import Selection
from .config import UPGRADE_COMMAND, Config, from_dict, older_keys, to_dict, upgrade_advice
from .errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2
"""Bumped whenever the stored layout changes incompatibly (2: named streams in the config).
The only version :func:`load_checkpoint` reads; ``twostream-das upgrade`` writes older ones in
it."""

OLDER_VERSIONS = (1,)
"""Versions that older twostream_das wrote; ``twostream-das upgrade`` reads them."""

_REQUIRED_KEYS = ("weights", "config", "label_names", "stream_dims", "epoch", "version")


@dataclass
class Checkpoint:
    """Everything a checkpoint file stores (see the module docstring)."""

    weights: dict[str, torch.Tensor]
    config: dict[str, Any]
    label_names: list[str]
    stream_dims: dict[str, int]
    epoch: int
    optimizer: Optional[dict[str, Any]] = None
    metrics: dict[str, Any] = field(default_factory=dict)
    selection: Optional[Selection] = None
    progress: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    version: int = CHECKPOINT_VERSION

    def to_config(self) -> Config:
        """The stored config as a :class:`Config` (raises ConfigError if it no longer parses)."""
        return from_dict(self.config)

    def as_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "optimizer": self.optimizer,
            "config": self.config,
            "label_names": list(self.label_names),
            "stream_dims": dict(self.stream_dims),
            "epoch": int(self.epoch),
            "metrics": self.metrics,
            "selection": None if self.selection is None else self.selection.to_dict(),
            "progress": self.progress,
            "rng": self.rng,
            "version": int(self.version),
        }


def make_checkpoint(
    model: torch.nn.Module,
    cfg: Config,
    label_names: list[str] | tuple[str, ...],
    stream_dims: dict[str, int],
    epoch: int,
    **extra: Any,
) -> Checkpoint:
    """Snapshot ``model`` (weights copied to CPU) with its config and label map."""
    weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return Checkpoint(
        weights=weights,
        config=to_dict(cfg),
        label_names=list(label_names),
        stream_dims={k: int(v) for k, v in stream_dims.items()},
        epoch=int(epoch),
        **extra,
    )


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` atomically (:func:`twostream_das.atomic.atomic_write`: a temporary file in
    the same folder, fsynced, then ``os.replace``)."""
    path = atomic_write(path, lambda handle: torch.save(ckpt.as_dict(), handle))
    logger.debug("saved checkpoint %s (epoch %d)", path, ckpt.epoch)
    return path


def torch_load_safely(
    path: Path, what: str, map_location: str | torch.device = "cpu"
) -> Any:
    """``torch.load(path, weights_only=True)``: builtins and tensors only, never arbitrary pickles.

    Raises:
        CheckpointError: torch cannot read the file safely (corrupt, not a torch file, or it
        needs unsafe unpickling); the message names ``what`` (e.g. ``checkpoint``), the file
        and the reason in this package's words: torch's advice to retry with
        ``weights_only=False`` (which runs code from the file) is never passed on.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder; expected a file{_inside(path)}")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt/unsafe files
        raise CheckpointError(f"{what} {path} cannot be read: {unsafe_load_reason(err)}") from None


def unsafe_load_reason(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, without torch's advice to load unsafely."""
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"it holds a pickled Python object ({found.group(1)}), and files are only read "
            "as tensors and builtins (torch.load weights_only=True), never unpickled; expected "
            "a file of tensors and builtins such as twostream_das writes"
        )
    if "Weights only load failed" in text or "weights_only" in text:
        return (
            "it is corrupt or not a PyTorch file of tensors and builtins (torch.load "
            "weights_only=True could not read it)"
        )
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return f"{first}; expected a PyTorch file written with torch.save"


def _inside(folder: Path) -> str:
    """`` such as FOLDER/checkpoints/best.pt`` for a run folder, else ``.pt`` files found."""
    best = folder / "checkpoints" / "best.pt"
    if best.is_file():
        return f" such as {best}"
    found = sorted(folder.glob("*.pt"))[:3]
    return f" such as {found[0]}" if found else " (a .pt file)"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: the file is missing, unreadable, of another version (an older one
            names the upgrade command), or lacks a key.
    """
    path = Path(path)
    raw = torch_load_safely(path, "checkpoint", map_location)
    if not isinstance(raw, dict):
        raise CheckpointError(f"checkpoint {path} holds {type(raw).__name__}; expected a dict")
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)}; is it a twostream_das checkpoint?"
        )
    _refuse_older_format(raw, path)
    known = {k: raw[k] for k in Checkpoint.__dataclass_fields__ if k in raw}
    for key in ("metrics", "progress", "rng"):
        if known.get(key) is None:
            known[key] = {}
    if known.get("selection") is not None:
        try:
            known["selection"] = Selection.from_dict(known["selection"], list(raw["stream_dims"]))
        except ConfigError as err:
            raise CheckpointError(f"checkpoint {path} has an invalid selection: {err}") from None
    return Checkpoint(**known)


def _refuse_older_format(raw: dict[str, Any], path: Path) -> None:
    """Stop in one line on a checkpoint of another version or with a config of an older one."""
    version = raw["version"]
    if version in OLDER_VERSIONS:
        raise CheckpointError(
            f"checkpoint {path} has version {version}, the format of an older twostream_das; "
            f"{upgrade_advice(path)} ({CHECKPOINT_VERSION})"
        )
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has version {version!r}; this twostream_das reads version "
            f"{CHECKPOINT_VERSION}, and `{UPGRADE_COMMAND}` takes version "
            f"{', '.join(map(str, OLDER_VERSIONS))}"
        )
    old = older_keys(raw["config"])
    if old:
        raise CheckpointError(
            f"checkpoint {path} has a config with {', '.join(old)}, keys of an older "
            f"twostream_das; {upgrade_advice(path)}"
        )


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], where: str,
                 expected: str) -> None:  # fmt: skip
    """``model.load_state_dict(weights)``, with a mismatch as one :class:`CheckpointError`.

    Args:
        where: the file, for the message (e.g. ``checkpoint runs/x/checkpoints/best.pt``).
        expected: what would fit, for the message.

    Raises:
        CheckpointError: naming the first tensor whose shape differs (its shape in the file and
        the model's), or the first missing or unexpected key.
    """
    own = model.state_dict()
    for key, tensor in weights.items():
        if key in own and tensor.shape != own[key].shape:
            raise CheckpointError(
                f"{where} does not fit the model: tensor {key} has shape {tuple(tensor.shape)} "
                f"in the file, the model expects {tuple(own[key].shape)}; {expected}"
            )
    missing = [k for k in own if k not in weights]
    unknown = [k for k in weights if k not in own]
    if missing or unknown:
        what = f"lacks tensor {missing[0]}" if missing else f"has a tensor {unknown[0]}"
        raise CheckpointError(
            f"{where} does not fit the model: it {what} that the model "
            f"{'has' if missing else 'does not have'} ({len(missing)} missing, {len(unknown)} "
            f"unexpected); {expected}"
        )
    model.load_state_dict(weights)


def checkpoint_config(path: str | Path) -> Config:
    """The config stored in a checkpoint."""
    return load_checkpoint(path).to_config()


def load_initial_weights(
    path: str | Path,
    model: torch.nn.Module,
    cfg: Config,
    stream_dims: dict[str, int],
    label_names: list[str],
) -> Checkpoint:
    """``train.init_from``: the weights of checkpoint ``path`` into ``model`` (fine-tuning; the
    optimizer, the epochs and the selection start afresh).

    Raises:
        CheckpointError: naming ``train.init_from`` and the file, when it cannot be read or its
        streams, feature dimensions, classes or tensor shapes differ from the model's.
    """
    where = f"train.init_from {path}"
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(f"train.init_from: {err}") from None
    if ckpt.stream_dims != dict(stream_dims):
        raise CheckpointError(
            f"{where} has streams {ckpt.stream_dims}; the data give {dict(stream_dims)}; "
            f"expected the same names and feature dimensions"
        )
    if list(ckpt.label_names) != list(label_names):
        raise CheckpointError(
            f"{where} was trained on classes {list(ckpt.label_names)[:5]}... "
            f"({len(ckpt.label_names)}); the mapping lists {len(label_names)} others; expected "
            f"the same mapping"
        )
    fits = ("expected the same model.encoder / model.decoder sizes (train with --config on its "
            "config.yaml)")
    load_weights(model, ckpt.weights, f"{where}", fits)
    stored = (ckpt.config.get("model") or {}).get("attention_outside")
    if stored is not None and stored != cfg.model.attention_outside.value:
        logger.warning(
            "%s was trained with model.attention_outside = %s, this run uses %s", where, stored,
            cfg.model.attention_outside.value,
        )
    logger.info("%s: weights loaded (epoch %d); optimizer and epochs start afresh", where,
                ckpt.epoch)
    return ckpt
