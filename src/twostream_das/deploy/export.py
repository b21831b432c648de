"""``twostream-das export``: a checkpoint as ONNX graphs and a manifest (:mod:`.bundle`).

Per stream three graphs, each through the torch.export-based exporter
(``torch.onnx.export(..., dynamo=True)``) with a dynamic batch and number of frames: the
encoder, the decoder's per-video context and the decoder's step (the folder's layout:
:mod:`.bundle`). The sampler loop, fusion and post-processing stay on the host
(:mod:`.runtime`), as the convention of diffusion tooling has it.

The graphs are traced from the reference backend (plain PyTorch, the spec), never the fast
kernels. After export every graph passes ``onnx.checker`` and is run once on onnxruntime
against the PyTorch model on a padded probe batch; a checkpoint whose host-side choices the
runtime does not implement, or whose graphs differ from the model by more than
:data:`VERIFY_TOLERANCE`, is refused with the reason (:class:`.bundle.ExportError`).
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import onnx  # the 'onnx' extra (with onnxscript, which the exporter uses)
import torch
from torch import nn

from .._version import __version__
from ..config import FAST_SAMPLING, Config, FusionInput, FusionRule, Precision
from ..diffusion import make_sampler
from ..kernels import frame_mask, use_backend, window_key_mask
from ..model.decoder import Decoder, DecoderContext
from ..model.encoder import Encoder
from ..model.stream import DiffusionStream
from ..prediction.inference import LoadedModel, load_model
from .bundle import (
    FORMAT,
    FORMAT_VERSION,
    GRAPH_IO,
    MANIFEST,
    ROLES,
    BundleError,
    ExportError,
    graph_file,
    sha256_file,
)
from .host import POSTPROCESS_KINDS, SAMPLERS, SPACINGS, VIEWS

logger = logging.getLogger(__name__)

VERIFY_TOLERANCE = 1e-4
"""Largest difference of any graph output from the PyTorch model on the probe batch, relative
to the output's largest magnitude where that exceeds 1 (float32 rounding grows with it: the
encoder logits of DiffAct's oracle at trained scale reach hundreds)."""

FUSION_SAMPLING = ("separate", "joint")
"""Where the streams meet (``fusion.sampling``) as the runtime implements it."""

PROBE_FRAMES = (41, 29)
"""The probe batch: two videos of these lengths (odd, the second padded), also the example the
graphs are traced with (its sizes are not baked in: B and T are dynamic)."""


class _EncoderGraph(nn.Module):
    """features (B, D, T), mask (B, T) bool -> logits (B, C, T), cond (B, Dc, T)."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.encoder(features, mask)
        return out.logits, out.cond


class _ContextGraph(nn.Module):
    """cond (B, Dc, T) -> per decoder block (B, 3F, T) (:meth:`Decoder.prepare`'s qkv_in)."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(block.project_cond(cond) for block in self.decoder.blocks)


class _DecoderGraph(nn.Module):
    """x (B, C, T), t (B,), mask (B, T), *context -> x0 logits (B, C, T)
    (:meth:`Decoder.denoise` over the context of :class:`_ContextGraph`)."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, *context: torch.Tensor
    ) -> torch.Tensor:
        fmask = frame_mask(mask, x.dtype)
        key_masks = tuple(
            window_key_mask(fmask.valid, b.kernel_size, b.dilation) for b in self.decoder.blocks
        )  # each (B, k, T)
        return self.decoder.denoise(x, t, DecoderContext(fmask, key_masks, tuple(context)))


def check_exportable(loaded: LoadedModel, cfg: Config) -> None:
    """Refuse a checkpoint whose host-side choices the runtime does not implement.

    Raises:
        ExportError: naming the setting, its value and what the runtime implements.
    """
    checks = [
        ("the sampler", cfg.eval.sampler, tuple(SAMPLERS)),
        ("eval.views", cfg.eval.views.value, VIEWS),
        ("eval.timestep_spacing", cfg.eval.timestep_spacing.value, SPACINGS),
        ("fusion.rule", loaded.fusion_method.rule.value, tuple(r.value for r in FusionRule)),
        ("fusion.input", cfg.fusion.input.value, tuple(i.value for i in FusionInput)),
        ("fusion.sampling", _sampling(cfg).get("sampling", "separate"), FUSION_SAMPLING),
        ("post-processing", loaded.postprocess.kind.value, POSTPROCESS_KINDS),
    ]
    for what, value, known in checks:
        if value not in known:
            raise ExportError(
                f"cannot export faithfully: {what} is {value!r}, which the ONNX runtime does not "
                f"implement (it implements {', '.join(known)})"
            )
    if cfg.eval.precision is not Precision.FP32:
        logger.warning(
            "the checkpoint's eval.precision is %s; the graphs compute in float32 (the "
            "reference), so their probabilities differ from a %s run at %s precision",
            cfg.eval.precision.value, cfg.eval.precision.value, cfg.eval.precision.value,
        )


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    overwrite: bool = False,
    opset: Optional[int] = None,
    verify: bool = True,
) -> Path:
    """Export ``checkpoint`` into the folder ``out`` (layout: :mod:`.bundle`).

    Args:
        checkpoint: a checkpoint file (``.pt``).
        out: the folder to write; refused when it holds files, unless ``overwrite``.
        opset: the ONNX opset (None: the exporter's default).
        verify: run every graph on onnxruntime against the model (needs onnxruntime).

    Returns:
        The manifest's path.

    Raises:
        ExportError: the checkpoint cannot be exported faithfully (the reason is named).
        BundleError: ``out`` holds files and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise BundleError(
                f"--out {out} is not empty; expected a new folder, or pass --overwrite"
            )
        shutil.rmtree(out)
    loaded = load_model(checkpoint, torch.device("cpu"))
    cfg = loaded.config
    check_exportable(loaded, cfg)
    out.mkdir(parents=True, exist_ok=True)
    streams = []
    with use_backend("reference"), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's chatter (deprecations, axis names)
        for name in loaded.model.stream_names:
            stream = loaded.model.streams[name]
            graphs = _export_stream(name, stream, out, opset)
            for path in graphs.values():
                onnx.checker.check_model(str(path), full_check=True)
            if verify:
                _verify(name, stream, graphs)
            streams.append(_stream_manifest(loaded, name, stream, graphs))
    opset_used = _opset(onnx.load(str(next(iter(streams[0]["_paths"].values())))))
    for entry in streams:
        entry.pop("_paths")
    manifest = _manifest(checkpoint, loaded, cfg, streams, opset_used, onnx.__version__)
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    logger.info("exported %s into %s (%d graphs)", checkpoint, out, 3 * len(streams))
    return path


def _probe(stream: DiffusionStream) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """A padded probe batch: features (2, D, T) and mask (2, T), fixed draws."""
    gen = torch.Generator().manual_seed(0)
    frames = PROBE_FRAMES[0]
    features = torch.randn(len(PROBE_FRAMES), stream.in_dim, frames, generator=gen)
    mask = torch.arange(frames)[None, :] < torch.tensor(PROBE_FRAMES)[:, None]  # (2, T)
    return features * mask[:, None, :], mask, gen


def _export_stream(
    name: str, stream: DiffusionStream, out: Path, opset: Optional[int]
) -> dict[str, Path]:
    """The stream's three graphs, traced on the probe batch with dynamic B and T."""
    batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames")
    features, mask, gen = _probe(stream)
    cond = stream.encoder(features, mask).cond
    context = tuple(block.project_cond(cond) for block in stream.decoder.blocks)
    count = len(context)
    x = torch.rand(len(PROBE_FRAMES), stream.num_classes, features.shape[2], generator=gen)
    t = torch.tensor([999, 40])[: len(PROBE_FRAMES)]
    btc, bt = {0: batch, 2: frames}, {0: batch, 1: frames}
    specs: dict[str, tuple[nn.Module, tuple[Any, ...], Any, list[str], list[str]]] = {
        "encoder": (_EncoderGraph(stream.encoder), (features, mask), (btc, bt),
                    ["features", "mask"], ["logits", "cond"]),
        "decoder_context": (_ContextGraph(stream.decoder), (cond,), (btc,), ["cond"],
                            [f"context_{i}" for i in range(count)]),
        "decoder": (_DecoderGraph(stream.decoder), (x, t, mask, *context),
                    (btc, {0: batch}, bt, tuple([btc] * count)),
                    ["x", "t", "mask", *(f"context_{i}" for i in range(count))], ["x0_logits"]),
    }  # fmt: skip
    paths = {}
    for role in ROLES:
        module, args, dynamic, inputs, outputs = specs[role]
        path = out / graph_file(name, role)
        try:
            program = torch.onnx.export(
                module.eval(), args, dynamo=True, dynamic_shapes=dynamic, opset_version=opset,
                input_names=inputs, output_names=outputs, verbose=False,
            )  # fmt: skip
        except Exception as err:  # the exporter's many error types; named, not hidden
            raise ExportError(
                f"cannot export the {name} {role} graph: {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}"
            ) from err
        program.save(str(path))
        paths[role] = path
    return paths


def _verify(name: str, stream: DiffusionStream, graphs: dict[str, Path]) -> None:
    """Run the graphs on onnxruntime against the model on the probe batch (padded, two steps).

    Raises:
        ExportError: an output differs by more than :data:`VERIFY_TOLERANCE`.
    """
    import onnxruntime as ort

    features, mask, gen = _probe(stream)
    enc = stream.encoder(features, mask)
    ctx = stream.decoder.prepare(enc.cond, mask)
    x = torch.rand(len(PROBE_FRAMES), stream.num_classes, features.shape[2], generator=gen)
    t = torch.tensor([999, 40])[: len(PROBE_FRAMES)]
    expected = {
        "encoder": [enc.logits, enc.cond],
        "decoder_context": list(ctx.qkv_in),
        "decoder": [stream.decoder.denoise(x, t, ctx)],
    }
    feeds = {
        "encoder": {"features": features.numpy(), "mask": mask.numpy()},
        "decoder_context": {"cond": enc.cond.numpy()},
        "decoder": {"x": x.numpy(), "t": t.numpy(), "mask": mask.numpy(),
                    **{f"context_{i}": c.numpy() for i, c in enumerate(ctx.qkv_in)}},
    }  # fmt: skip
    valid = mask.numpy()[:, None, :]
    for role, path in graphs.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, feeds[role])
        for want, have in zip(expected[role], got, strict=True):
            diff = float(np.abs(np.where(valid, have - want.numpy(), 0.0)).max())
            bound = VERIFY_TOLERANCE * max(1.0, float(want.abs().max()))
            if not diff <= bound:
                raise ExportError(
                    f"cannot export faithfully: the {name} {role} graph differs from the model by "
                    f"{diff:.3g} on the probe batch (expected at most {bound:.3g})"
                )


def _stream_manifest(
    loaded: LoadedModel, name: str, stream: DiffusionStream, graphs: dict[str, Path]
) -> dict[str, Any]:
    spec = loaded.config.dataset.streams[name]
    standardizer = loaded.model.standardizer
    std = None
    if standardizer is not None:
        mean, dev = standardizer.stats(name)
        std = {"mean": [float(v) for v in mean.tolist()], "std": [float(v) for v in dev.tolist()]}
    return {
        "name": name,
        "dim": int(stream.in_dim),
        "orientation": spec.orientation.value,
        "source": spec.source.value,
        "standardize": std,
        "context_outputs": len(stream.decoder.blocks),
        "graphs": {
            role: {"file": path.name, "sha256": sha256_file(path)} for role, path in graphs.items()
        },
        "_paths": graphs,
    }


def _sampling(cfg: Config) -> dict[str, str]:
    """``{"sampling": "separate" | "joint"}`` (``fusion.sampling``: the streams fused after
    sampling, or inside the sampler at every step) where the config has the setting."""
    value = getattr(cfg.fusion, "sampling", None)
    return {} if value is None else {"sampling": str(getattr(value, "value", value))}


def _opset(model: Any) -> int:
    return int(next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))


def _manifest(
    checkpoint: str | Path,
    loaded: LoadedModel,
    cfg: Config,
    streams: Sequence[dict[str, Any]],
    opset: int,
    onnx_version: str,
) -> dict[str, Any]:
    first = loaded.model.streams[loaded.model.stream_names[0]]
    diffusion = cfg.model.diffusion
    sampler = make_sampler(cfg, first.diffusion.schedule)
    method = loaded.fusion_method
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "opset": opset,
        "exported_with": {"torch": torch.__version__, "onnx": onnx_version},
        "checkpoint": {
            "file": Path(checkpoint).name,
            "sha256": sha256_file(Path(checkpoint)),
            "epoch": int(loaded.checkpoint.epoch),
        },
        "classes": list(loaded.label_names),
        "background": list(cfg.dataset.background),
        "streams": list(streams),
        "sampler": {
            "name": cfg.eval.sampler,
            "eta": float(diffusion.eta),
            "num_inference_steps": len(sampler.timesteps),
            "num_train_timesteps": int(diffusion.num_train_timesteps),
            "schedule": {"kind": "cosine", "cosine_s": float(diffusion.cosine_s)},
            "alphas_cumprod": [float(v) for v in first.diffusion.schedule.alphas_cumprod.tolist()],
            "timestep_spacing": cfg.eval.timestep_spacing.value,
            "timesteps": list(sampler.timesteps),
            "signal_scale": float(first.diffusion.signal_scale),
        },
        "inference": {
            "seed": int(cfg.eval.seed),
            "samples": int(cfg.eval.samples),
            "sample_rate": int(cfg.dataset.sample_rate),
            "views": cfg.eval.views.value,
            "fast": dict(FAST_SAMPLING),
            "precision": "fp32",
        },
        "fusion": {
            "weights": loaded.fusion_weights.to_dict(),
            "rule": method.rule.value,
            "input": cfg.fusion.input.value,
            "temperatures": {s: float(v) for s, v in method.temperatures.items()},
            "prob_floor": float(method.floor),
            **_sampling(cfg),
        },
        "postprocess": loaded.postprocess.to_dict(),
        "data": {
            "fps": float(cfg.dataset.fps),
            "length_tolerance": int(cfg.dataset.length_tolerance),
        },
        "graph_io": GRAPH_IO,
    }
