"""DiffAct / 2s-DAS reference checkpoints as this package's streams.

A DiffAct ``ASDiffusionModel.state_dict()`` (DiffAct's ``release.model``, the 2s-DAS release's
``rgb_epoch-N.model`` / ``flow_epoch-N.model``, or one entry ``<stream>_model`` of its
``latest.pt``) holds one stream. :func:`diffact_shape` reads the network sizes from it;
:func:`diffact_to_stream` renames its tensors to :class:`~twostream_das.stream.DiffusionStream`'s:

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
the config). Files are read with ``torch.load(weights_only=True)``. The ``convert`` command
that writes whole checkpoints from these is not written yet (see the README).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import torch_load_safely
from .errors import CheckpointError

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
    """DiffAct's tensors under :class:`~twostream_das.stream.DiffusionStream`'s names."""
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
