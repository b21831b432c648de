"""DiffAct / 2s-DAS reference checkpoints as this package's streams.

A DiffAct ``ASDiffusionModel.state_dict()`` (DiffAct's ``release.model``, the 2s-DAS release's
``rgb_epoch-N.model`` / ``flow_epoch-N.model``, or one entry ``<stream>_model`` of its
``latest.pt``) holds one stream. :func:`diffact_shape` reads the network sizes from it;
:func:`diffact_to_stream` renames its tensors to
:class:`~twostream_das.model.stream.DiffusionStream`'s:

    encoder.conv_in                          -> encoder.proj_in
    encoder.encoder.layers.i.conv_block.0    -> encoder.blocks.i.conv
    ...att_linear_{q,k,v}                    -> ...qkv (rows q, k, v)
    ...ffn_block.{0,2}                       -> ...ffn.{0,2}
    encoder.conv_out / decoder.conv_out      -> encoder.head / decoder.head
    decoder.time_in.{0,1}, module.time_proj  -> decoder.time_embedding.mlp.{0,2,4}
    decoder.conv_in                          -> decoder.proj_in
    decoder.module.layers.i.att_linear_{q,k} -> state columns to ...qkv, conditioning columns
                                                to ...cond_qk (DiffAct's q = W_q [x ; cond])

DiffAct's diffusion buffers are dropped (this package computes the same cosine schedule from
the config, and :func:`convert` checks that it is the same). Files are read with
``torch.load(weights_only=True)``.

:func:`convert` (the ``twostream-das convert`` command) writes a run folder that ``evaluate``,
``predict`` and ``train`` (``train.init_from``, fine-tuning) take, from

- the 2s-DAS release's ``latest.pt`` (``{"<stream>_model": state dict, ..., "epoch": E}``),
- one state-dict file per stream (``rgb_epoch-N.model``, ``flow_epoch-N.model``), or
- one DiffAct ``release.model``: a one-stream model (DiffAct on the 2048-d I3D features).

The network sizes come from the state dicts; the dataset, the mapping, the feature spec, the
diffusion settings, the fusion weights and the post-processing come from the user's config
(a preset and ``--set`` overrides); ``model.attention_outside`` is set to ``diffact``, the
semantics the weights were trained with. Every disagreement (stream names, feature dimensions,
classes, layer counts, conditioning blocks, the noise schedule) stops with a
:class:`~twostream_das.errors.CheckpointError` naming the file, the value and what was expected.

    RUN_DIR/run.json             fold, package version, config, ``converted_from`` (stream -> file)
    RUN_DIR/config.yaml          the same config, for people (and for ``train --config``)
    RUN_DIR/checkpoints/best.pt  version-2 checkpoint, no optimizer state; its ``selection``
                                 holds the given fusion weights and post-processing
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import torch

from .._version import __version__
from ..checkpoint import Checkpoint, save_checkpoint, torch_load_safely
from ..choices import Selection
from ..config import (
    AttentionOutside,
    Config,
    FeatureSource,
    _lookup,
    load_config,
    stream_names,
    to_dict,
    to_yaml,
    validate,
)
from ..data.layout import check_background, read_mapping
from ..diffusion import cosine_schedule
from ..errors import CheckpointError
from ..model.multi_stream import MultiStreamModel
from ..runs import LOCK_FILE, RunDir, locked, read_json, write_json, write_text

logger = logging.getLogger(__name__)

DIFFACT_BUFFERS: tuple[str, ...] = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2",
)  # fmt: skip
"""DiffAct's noise-schedule buffers (recomputed here from the config, so dropped)."""

_ENC = "encoder.encoder.layers"
_DEC = "decoder.module.layers"
_LAYER_PARTS = (
    "conv_block.0.weight", "conv_block.0.bias", "att_linear_q.weight", "att_linear_q.bias",
    "att_linear_k.weight", "att_linear_k.bias", "att_linear_v.weight", "att_linear_v.bias",
    "ffn_block.0.weight", "ffn_block.0.bias", "ffn_block.2.weight", "ffn_block.2.bias",
)  # fmt: skip
_TOP = (
    "encoder.conv_in.weight", "encoder.conv_in.bias", "encoder.conv_out.weight",
    "encoder.conv_out.bias", "decoder.time_in.0.weight", "decoder.time_in.0.bias",
    "decoder.time_in.1.weight", "decoder.time_in.1.bias", "decoder.conv_in.weight",
    "decoder.conv_in.bias", "decoder.module.time_proj.weight", "decoder.module.time_proj.bias",
    "decoder.conv_out.weight", "decoder.conv_out.bias",
)  # fmt: skip


@dataclass(frozen=True)
class DiffActShape:
    """Network sizes read from a DiffAct state dict."""

    in_dim: int
    num_classes: int
    encoder_blocks: int
    encoder_width: int
    encoder_kernel: int
    cond_dim: int
    decoder_blocks: int
    decoder_width: int
    decoder_kernel: int
    time_emb_dim: int

    def architecture(self) -> tuple[int, ...]:
        """Everything but the input size (what two streams of one model must share)."""
        return (
            self.num_classes, self.encoder_blocks, self.encoder_width, self.encoder_kernel,
            self.cond_dim, self.decoder_blocks, self.decoder_width, self.decoder_kernel,
            self.time_emb_dim,
        )  # fmt: skip

    def overrides(self) -> list[str]:
        """The config keys these sizes set."""
        return [
            f"model.encoder.num_blocks={self.encoder_blocks}",
            f"model.encoder.width={self.encoder_width}",
            f"model.encoder.kernel_size={self.encoder_kernel}",
            f"model.decoder.num_blocks={self.decoder_blocks}",
            f"model.decoder.width={self.decoder_width}",
            f"model.decoder.kernel_size={self.decoder_kernel}",
            f"model.decoder.time_emb_dim={self.time_emb_dim}",
        ]


def read_diffact_file(path: Path, what: str) -> dict[str, Any]:
    """A reference checkpoint file as a dict (``weights_only=True``).

    Raises:
        CheckpointError: missing, unreadable or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    raw = torch_load_safely(path, what)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{what} {path} holds {type(raw).__name__}; expected a state dict")
    return raw


def _layers(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    ids = {int(m.group(1)) for k in sd if (m := re.match(rf"{re.escape(prefix)}\.(\d+)\.", k))}
    if ids != set(range(len(ids))):
        raise CheckpointError(f"layers {sorted(ids)} under {prefix} are not 0 .. n-1")
    return len(ids)


def diffact_shape(sd: Mapping[str, torch.Tensor], where: str) -> DiffActShape:
    """Read the sizes of a DiffAct state dict, checking it holds exactly DiffAct's tensors.

    Raises:
        CheckpointError: naming ``where`` and the missing, unexpected or inconsistent tensors.
    """
    enc_blocks, dec_blocks = _layers(sd, _ENC), _layers(sd, _DEC)
    expected = {*_TOP, *DIFFACT_BUFFERS}
    expected |= {f"{_ENC}.{i}.{p}" for i in range(enc_blocks) for p in _LAYER_PARTS}
    expected |= {f"{_DEC}.{i}.{p}" for i in range(dec_blocks) for p in _LAYER_PARTS}
    missing = sorted(k for k in expected - set(sd) if k not in DIFFACT_BUFFERS)
    unknown = sorted(set(sd) - expected)
    if missing or unknown or enc_blocks == 0 or dec_blocks == 0:
        raise CheckpointError(
            f"{where} is not a DiffAct ASDiffusionModel state dict this package can import: "
            f"missing {missing[:4] or 'nothing'}, unexpected {unknown[:4] or 'nothing'} (an "
            f"input instance norm or other encoder options are not supported)"
        )
    conv_in, conv_out = sd["encoder.conv_in.weight"], sd["encoder.conv_out.weight"]
    enc_conv = sd[f"{_ENC}.0.conv_block.0.weight"]
    dec_in, dec_conv = sd["decoder.conv_in.weight"], sd[f"{_DEC}.0.conv_block.0.weight"]
    dec_q = sd[f"{_DEC}.0.att_linear_q.weight"]
    shape = DiffActShape(
        in_dim=int(conv_in.shape[1]),
        num_classes=int(conv_out.shape[0]),
        encoder_blocks=enc_blocks,
        encoder_width=int(conv_in.shape[0]),
        encoder_kernel=int(enc_conv.shape[2]),
        cond_dim=int(dec_q.shape[1] - dec_in.shape[0]),
        decoder_blocks=dec_blocks,
        decoder_width=int(dec_in.shape[0]),
        decoder_kernel=int(dec_conv.shape[2]),
        time_emb_dim=int(sd["decoder.time_in.0.weight"].shape[1]),
    )
    if int(dec_in.shape[1]) != shape.num_classes:
        raise CheckpointError(
            f"{where}: the decoder takes {dec_in.shape[1]} classes, the encoder predicts "
            f"{shape.num_classes}; expected the same"
        )
    return shape


def diffact_to_stream(
    sd: Mapping[str, torch.Tensor], shape: DiffActShape
) -> dict[str, torch.Tensor]:
    """DiffAct's tensors under :class:`~twostream_das.model.stream.DiffusionStream`'s names."""
    out: dict[str, torch.Tensor] = {}

    def copy(dst: str, src: str) -> None:
        out[dst] = sd[src].detach().clone().float()

    for ours, theirs in (
        ("encoder.proj_in", "encoder.conv_in"),
        ("encoder.head", "encoder.conv_out"),
        ("decoder.proj_in", "decoder.conv_in"),
        ("decoder.head", "decoder.conv_out"),
        ("decoder.time_embedding.mlp.0", "decoder.time_in.0"),
        ("decoder.time_embedding.mlp.2", "decoder.time_in.1"),
        ("decoder.time_embedding.mlp.4", "decoder.module.time_proj"),
    ):
        copy(f"{ours}.weight", f"{theirs}.weight")
        copy(f"{ours}.bias", f"{theirs}.bias")
    for ours, theirs, blocks, width in (
        ("encoder.blocks", _ENC, shape.encoder_blocks, shape.encoder_width),
        ("decoder.blocks", _DEC, shape.decoder_blocks, shape.decoder_width),
    ):
        for i in range(blocks):
            src, dst = f"{theirs}.{i}", f"{ours}.{i}"
            copy(f"{dst}.conv.weight", f"{src}.conv_block.0.weight")
            copy(f"{dst}.conv.bias", f"{src}.conv_block.0.bias")
            for j in (0, 2):
                copy(f"{dst}.ffn.{j}.weight", f"{src}.ffn_block.{j}.weight")
                copy(f"{dst}.ffn.{j}.bias", f"{src}.ffn_block.{j}.bias")
            q, k, v = (sd[f"{src}.att_linear_{n}.weight"].float() for n in "qkv")  # (F, I, 1)
            out[f"{dst}.qkv.weight"] = torch.cat([q[:, :width], k[:, :width], v]).clone()
            out[f"{dst}.qkv.bias"] = torch.cat(
                [sd[f"{src}.att_linear_{n}.bias"].float() for n in "qkv"]
            ).clone()
            if ours.startswith("decoder"):  # q, k = W [state ; cond]
                out[f"{dst}.cond_qk.weight"] = torch.cat([q[:, width:], k[:, width:]]).clone()
    return out


# ----------------------------------------------------------------------------- whole checkpoints

I3D_HALF_DIM = 1024
"""Feature dimension of ``dataset.streams.*.source`` i3d_rgb / i3d_flow (one half of 2048)."""

SCHEDULE_TOLERANCE = 1e-6
"""Largest difference allowed between a state dict's ``alphas_cumprod`` and the config's."""


@dataclass(frozen=True)
class ReferenceStream:
    """One stream's DiffAct state dict, where it came from, and its sizes."""

    name: str
    state: Mapping[str, torch.Tensor]
    where: str  # the file (and the key inside it) for messages
    shape: DiffActShape


def read_latest(path: str | Path) -> tuple[list[ReferenceStream], Optional[int]]:
    """The streams of a 2s-DAS ``latest.pt`` (every ``<name>_model`` entry), and its epoch.

    Raises:
        CheckpointError: unreadable, no ``<name>_model`` entry, or one is not a DiffAct state dict.
    """
    raw = read_diffact_file(Path(path), "2s-DAS checkpoint")
    streams = []
    for key, value in raw.items():
        if isinstance(key, str) and key.endswith("_model") and isinstance(value, dict):
            where = f"{path} [{key}]"
            name = key.removesuffix("_model")
            streams.append(ReferenceStream(name, value, where, diffact_shape(value, where)))
    if not streams:
        raise CheckpointError(
            f"2s-DAS checkpoint {path} holds no <stream>_model state dict (keys "
            f"{sorted(map(str, raw))[:6]}); expected e.g. rgb_model and flow_model"
        )
    epoch = raw.get("epoch")
    return streams, int(epoch) if isinstance(epoch, int) else None


def read_stream_files(files: Mapping[str, str | Path]) -> list[ReferenceStream]:
    """One DiffAct state-dict file per stream name (``release.model``, ``rgb_epoch-N.model``,
    or a training checkpoint ``{"model": state dict, "optimizer": ..., ...}``)."""
    out = []
    for name, path in files.items():
        state, where = read_diffact_file(Path(path), f"stream {name}'s state dict"), str(path)
        inner = state.get("model")
        if isinstance(inner, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
            state, where = inner, f"{path} [model]"  # DiffAct's latest.pt: the weights only
        out.append(ReferenceStream(name, state, where, diffact_shape(state, where)))
    return out


def file_epoch(paths: Sequence[str | Path]) -> Optional[int]:
    """N of ``epoch-N`` in the file names when they all agree (``rgb_epoch-7.model``), else None."""
    found = {m.group(1) for p in paths if (m := re.search(r"epoch-(\d+)", Path(p).name))}
    return int(found.pop()) if len(found) == 1 and len(paths) > 0 else None


_SIZE_KEYS = {
    "model.encoder.num_blocks": "encoder_blocks", "model.encoder.width": "encoder_width",
    "model.encoder.kernel_size": "encoder_kernel", "model.decoder.num_blocks": "decoder_blocks",
    "model.decoder.width": "decoder_width", "model.decoder.kernel_size": "decoder_kernel",
    "model.decoder.time_emb_dim": "time_emb_dim",
}  # fmt: skip
"""Config key -> the :class:`DiffActShape` field that sets it."""


def converted_config(
    cfg: Config,
    streams: Sequence[ReferenceStream],
    num_classes: int,
    given: Sequence[str] = (),
) -> Config:
    """``cfg`` with the state dicts' sizes, ``attention_outside = diffact`` and each stream's
    feature dimension, after checking that everything the user gave agrees with the files.

    Args:
        cfg: the user's config (preset and overrides).
        streams: the reference streams.
        num_classes: classes of the user's mapping.
        given: config keys the user set explicitly (``--set``); a size among them must equal
            the state dict's, the others are replaced.

    Raises:
        CheckpointError: naming the file, the value found and what was expected.
    """
    first = streams[0]
    for other in streams[1:]:
        if other.shape.architecture() != first.shape.architecture():
            raise CheckpointError(
                f"{other.where} has another network than {first.where} ({other.shape} vs "
                f"{first.shape}); expected streams of one model, which share every size but "
                f"the input"
            )
    names, have = list(stream_names(cfg)), [s.name for s in streams]
    if sorted(names) != sorted(have):
        raise CheckpointError(
            f"the config's dataset.streams are {names}, the reference files hold {have}; "
            f"expected the same names (set dataset.streams to match, e.g. --set "
            f"'dataset.streams={{{have[0]}: {{source: folder, folder: features}}}}')"
        )
    shape = first.shape
    if shape.num_classes != num_classes:
        raise CheckpointError(
            f"{first.where} predicts {shape.num_classes} classes; the mapping lists "
            f"{num_classes}; expected the same (the dataset the checkpoint was trained on)"
        )
    for key, field_name in _SIZE_KEYS.items():
        value, stored = _lookup(cfg, key), getattr(shape, field_name)
        if key in given and value != stored:
            raise CheckpointError(
                f"{key} = {value} (--set) disagrees with {first.where}, which has {stored}; "
                f"expected the same, or leave {key} out (convert reads the sizes from the file)"
            )
    cond = list(cfg.model.encoder.cond_blocks)
    if len(cond) * shape.encoder_width != shape.cond_dim or max(cond) >= shape.encoder_blocks:
        raise CheckpointError(
            f"model.encoder.cond_blocks = {cond} does not fit {first.where}: its decoder reads "
            f"{shape.cond_dim} conditioning channels = {shape.cond_dim // shape.encoder_width} "
            f"encoder blocks of width {shape.encoder_width}, of {shape.encoder_blocks}; expected "
            f"that many block ids < {shape.encoder_blocks} (DiffAct's feature_layer_indices)"
        )
    specs = dict(cfg.dataset.streams)
    for ref in streams:
        spec = specs[ref.name]
        implied = I3D_HALF_DIM if spec.source is not FeatureSource.FOLDER else spec.dim
        if implied is not None and implied != ref.shape.in_dim:
            raise CheckpointError(
                f"{ref.where} takes {ref.shape.in_dim}-d features; dataset.streams.{ref.name} "
                f"gives {implied}-d ({spec.source.value}); expected the same (the features it "
                f"was trained on)"
            )
        specs[ref.name] = replace(spec, dim=ref.shape.in_dim)
        _check_schedule(ref, cfg)
    model = cfg.model
    sizes = {field_name: getattr(shape, field_name) for field_name in _SIZE_KEYS.values()}
    out = replace(
        cfg,
        dataset=replace(cfg.dataset, streams=specs),
        model=replace(
            model,
            attention_outside=AttentionOutside.DIFFACT,
            encoder=replace(model.encoder, num_blocks=sizes["encoder_blocks"],
                            width=sizes["encoder_width"], kernel_size=sizes["encoder_kernel"]),
            decoder=replace(model.decoder, num_blocks=sizes["decoder_blocks"],
                            width=sizes["decoder_width"], kernel_size=sizes["decoder_kernel"],
                            time_emb_dim=sizes["time_emb_dim"]),
        ),
    )  # fmt: skip
    validate(out)
    return out


def _check_schedule(ref: ReferenceStream, cfg: Config) -> None:
    """The state dict's noise schedule (when it carries one) must be the config's."""
    stored = ref.state.get("alphas_cumprod")
    if stored is None:
        return
    diff = cfg.model.diffusion
    if stored.numel() != diff.num_train_timesteps:
        raise CheckpointError(
            f"{ref.where} was trained with {stored.numel()} diffusion steps; "
            f"model.diffusion.num_train_timesteps is {diff.num_train_timesteps}; expected the same"
        )
    ours = cosine_schedule(diff.num_train_timesteps, diff.cosine_s).alphas_cumprod
    gap = float((stored.double().flatten() - ours).abs().max())
    if gap > SCHEDULE_TOLERANCE:
        raise CheckpointError(
            f"{ref.where}'s noise schedule (alphas_cumprod) differs from the cosine schedule "
            f"of model.diffusion.cosine_s = {diff.cosine_s} by up to {gap:.2e}; expected the "
            f"same within {SCHEDULE_TOLERANCE:g}"
        )


def converted_checkpoint(
    cfg: Config,
    streams: Sequence[ReferenceStream],
    label_names: Sequence[str],
    epoch: int = 0,
    source: str = "",
) -> Checkpoint:
    """A version-2 checkpoint of ``cfg`` (see :func:`converted_config`) holding the streams'
    weights, loaded into the model built from ``cfg`` (so every shape is checked), and a
    ``selection`` of the config's fusion weights and post-processing (score NaN: nothing was
    chosen on validation).

    Raises:
        CheckpointError: a tensor the model lacks, a parameter no file provides, a wrong shape,
            ``fusion.temperature`` on (temperatures are fitted on validation videos) or
            ``dataset.standardize`` on (its statistics are fitted on training videos).
    """
    if cfg.dataset.standardize:
        raise CheckpointError(
            "dataset.standardize = true: DiffAct's weights were trained on the raw features, "
            "and convert has no training videos to fit the statistics on; expected false"
        )
    if cfg.fusion.temperature:
        raise CheckpointError(
            "fusion.temperature = true needs temperatures fitted on validation videos, which "
            "convert does not have; expected false (fine-tune with train to fit them)"
        )
    dims = {ref.name: ref.shape.in_dim for ref in streams}
    model = MultiStreamModel.from_config(cfg, dims, len(label_names))
    weights = {
        f"streams.{ref.name}.{key}": value
        for ref in streams
        for key, value in diffact_to_stream(ref.state, ref.shape).items()
    }
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (model {tuple(own[k].shape)})"
             for k, v in weights.items() if k in own and v.shape != own[k].shape]  # fmt: skip
    unknown = sorted(set(weights) - set(own))
    unfilled = sorted({k for k, _ in model.named_parameters()} - set(weights))
    if wrong or unknown or unfilled:
        raise CheckpointError(
            f"{source or 'the reference files'} do not fit the configured model: shapes "
            f"{wrong[:3] or 'fine'}, unknown {unknown[:3] or 'none'}, parameters left unset "
            f"{unfilled[:3] or 'none'}; expected DiffAct state dicts of one architecture"
        )
    model.load_state_dict(weights, strict=False)  # buffers not in DiffAct keep their defaults
    selection = Selection.configured(cfg, int(epoch))  # given, not chosen: score NaN
    weights_out = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return Checkpoint(
        weights=weights_out,
        config=to_dict(cfg),
        label_names=list(label_names),
        stream_dims=dims,
        epoch=int(epoch),
        selection=selection,
        progress={},
    )


@dataclass(frozen=True)
class Converted:
    """What :func:`convert` wrote."""

    run: RunDir
    config: Config
    streams: tuple[str, ...]
    shape: DiffActShape

    @property
    def checkpoint(self) -> Path:
        return self.run.best


def convert(
    config: str | Path | None,
    overrides: Sequence[str],
    out: str | Path,
    latest: Optional[str | Path] = None,
    stream_files: Optional[Mapping[str, str | Path]] = None,
    mapping: Optional[str | Path] = None,
    fold: int = 1,
    force: bool = False,
) -> Converted:
    """Write a run folder (module docstring) from a 2s-DAS ``latest`` or per-stream files.

    Args:
        config, overrides: the user's config, as :func:`~twostream_das.config.load_config`
            takes them. The state dicts' sizes go in before the overrides, so an override of a
            size is the user's and must agree with the files.
        out: the run folder to write; it must not exist or be empty, unless ``force``, which
            replaces an earlier conversion (never a training run).
        latest / stream_files: exactly one of them.
        mapping: the label map (default ``<dataset.root>/mapping.txt``).
        fold: the split the weights were trained on (``evaluate`` scores its test videos).

    Raises:
        CheckpointError / DataError / ConfigError: bad input, or ``out`` would be overwritten.
    """
    if (latest is None) == (not stream_files):
        raise CheckpointError(
            "give a 2s-DAS latest.pt (--latest) or per-stream state-dict files (--stream "
            "NAME=FILE), exactly one of them"
        )
    if fold < 1:
        raise CheckpointError(f"--fold {fold} is invalid; expected >= 1")
    run = RunDir(Path(out))
    _check_out(run, force)
    if latest is not None:
        streams, epoch = read_latest(latest)
        sources = {s.name: f"{Path(latest).resolve()} [{s.name}_model]" for s in streams}
    else:
        assert stream_files is not None
        streams = read_stream_files(stream_files)
        epoch = file_epoch(list(stream_files.values()))
        sources = {s.name: str(Path(s.where).resolve()) for s in streams}
    sizes = [*streams[0].shape.overrides(), "model.attention_outside=diffact"]
    cfg = load_config(config, [*sizes, *overrides])
    mapping_path = Path(mapping) if mapping is not None else Path(cfg.dataset.root) / "mapping.txt"
    label_map = read_mapping(mapping_path)
    check_background(label_map, cfg.dataset.background)
    given = [item.split("=", 1)[0].strip() for item in overrides]
    new_cfg = converted_config(cfg, streams, len(label_map.names), given)
    order = {name: i for i, name in enumerate(stream_names(new_cfg))}
    streams = sorted(streams, key=lambda s: order[s.name])
    source = ", ".join(f"{k}={v}" for k, v in sources.items())
    ckpt = converted_checkpoint(new_cfg, streams, list(label_map.names), epoch or 0, source)
    with locked(run, "convert"):
        _check_out(run, force)  # again, now that no other process can write into it
        if force:
            for stale in (run.results_json, run.selection_json):
                stale.unlink(missing_ok=True)
            shutil.rmtree(run.predictions, ignore_errors=True)
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        save_checkpoint(run.best, ckpt)  # first: a folder with run.json has its checkpoint
        write_text(run.config_yaml, to_yaml(new_cfg))
        write_json(run.run_json, {"fold": fold, "version": __version__,
                                  "config": to_dict(new_cfg), "converted_from": sources})
    logger.info("converted %s into %s", source, run.best)
    return Converted(run, new_cfg, tuple(s.name for s in streams), streams[0].shape)


def _check_out(run: RunDir, force: bool) -> None:
    """``run`` may be written: new or empty; with ``force``, an earlier conversion (or what a
    killed conversion left); never a training run."""
    root = run.root
    if not root.exists():
        return
    if not root.is_dir():
        raise CheckpointError(f"--out {root} exists and is not a folder")
    content = [p for p in root.iterdir() if p.name != LOCK_FILE]
    if not content:
        return
    if run.run_json.is_file():
        converted = "converted_from" in read_json(run.run_json)
    else:  # what a killed conversion leaves: its checkpoint only
        converted = {p.name for p in content} <= {run.checkpoints.name}
    if not converted or run.last.is_file():
        raise CheckpointError(
            f"--out {root} holds files convert did not write (a training run or other files); "
            f"convert never writes into it; expected a new or empty folder"
        )
    if not force:
        raise CheckpointError(
            f"--out {root} holds an earlier conversion; expected a new or empty folder, or "
            f"--force to replace it"
        )
