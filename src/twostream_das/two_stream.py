"""2s-DAS: one :class:`DiffusionStream` per configured stream (``dataset.streams``: RGB and
FLOW in the presets; one stream is DiffAct), built from one config.

The streams are identical in structure, with their own input dimension and weights; training
minimises ``L = sum_s L_s`` (``L_rgb + L_flow``) in one backward pass; inference
(:meth:`TwoStreamModel.sample`) returns each stream's DDIM samples, whose probabilities
:func:`twostream_das.fusion.fuse` combines.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Optional

import torch
from torch import nn

from .config import AttentionOutside, Config, stream_names
from .diffusion import SampleResult, concat_results, sample, sample_passes
from .diffusion.ddim import Generators
from .modules import Backend, FrameMask, current_backend
from .stacked import KeyMasks, StackedDecoder, StackedEncoder, stacked_frame_mask
from .standardize import FeatureStandardizer
from .stream import DiffusionStream

if TYPE_CHECKING:
    from .data.collate import Batch


logger = logging.getLogger(__name__)


class TwoStreamLoss(NamedTuple):
    """Attributes:
    total: 0-dim, the sum of the streams' losses (L_rgb + L_flow).
    terms: ``"<stream>/<term>"`` -> unweighted term, and ``"<stream>/total"`` -> L_stream;
        detached 0-dim tensors.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class TwoStreamModel(nn.Module):
    """The streams' composition (one or more; the name is the paper's two).

    Args:
        streams: name -> :class:`DiffusionStream`, in the configured order (the order of
            tables and plots).
        standardizer: ``dataset.standardize``: the per-channel ``(x - mean) / std`` of the
            input, fitted on the training videos (its buffers are in the state dict); None =
            features as given.
    """

    def __init__(
        self,
        streams: Mapping[str, DiffusionStream],
        standardizer: Optional[FeatureStandardizer] = None,
    ) -> None:
        super().__init__()
        if not streams:
            raise ValueError("a model needs at least one stream")
        self.streams = nn.ModuleDict(dict(streams))
        self.standardizer = standardizer

    @classmethod
    def from_config(
        cls, cfg: Config, in_dims: Mapping[str, int], num_classes: int
    ) -> TwoStreamModel:
        """Args: in_dims: stream -> feature dimension (read from the data), naming exactly the
        streams of ``dataset.streams``; num_classes: C."""
        names = stream_names(cfg)
        if cfg.model.attention_outside is AttentionOutside.DIFFACT:
            logger.info(
                "model.attention_outside = diffact: only the reference backend implements it, "
                "so every block runs the reference ops and the streams are not stacked (slower)"
            )
        if set(in_dims) != set(names):
            raise ValueError(
                f"in_dims {dict(in_dims)} must have exactly the keys of dataset.streams {names}"
            )
        standardizer = FeatureStandardizer(in_dims) if cfg.dataset.standardize else None
        streams = {s: DiffusionStream.from_config(cfg, in_dims[s], num_classes) for s in names}
        return cls(streams, standardizer)

    def standardized(
        self, features: Mapping[str, torch.Tensor], mask: torch.Tensor
    ) -> Mapping[str, torch.Tensor]:
        """The streams' input: ``features`` (stream -> (B, D_s, T)) standardised when
        ``dataset.standardize`` is on (0 at padded frames), else as given."""
        return features if self.standardizer is None else self.standardizer(features, mask)

    def forward(
        self,
        batch: Batch,
        class_weights: Optional[torch.Tensor],
        generator: Generators,
    ) -> TwoStreamLoss:
        """Same as :meth:`loss`: ``forward`` is what ``DistributedDataParallel`` wraps."""
        return self.loss(batch, class_weights, generator)

    def loss(
        self,
        batch: Batch,
        class_weights: Optional[torch.Tensor],
        generator: Generators,
    ) -> TwoStreamLoss:
        """``sum_s L_s`` on one batch (all streams see the same samples).

        ``generator``: one, or one per sample (see :meth:`DiffusionStream.loss`); the streams
        draw from it in their order.
        """
        total: Optional[torch.Tensor] = None
        terms: dict[str, torch.Tensor] = {}
        features = self.standardized(batch.features, batch.mask)
        for name in self.stream_names:
            out = self.streams[name].loss(features[name], batch, class_weights, generator)
            total = out.total if total is None else total + out.total
            terms.update({f"{name}/{key}": value for key, value in out.terms.items()})
            terms[f"{name}/total"] = out.total.detach()
        assert total is not None
        return TwoStreamLoss(total, terms)

    @property
    def stream_names(self) -> list[str]:
        return list(self.streams)

    def sample(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        generators: Mapping[str, Sequence[torch.Generator]],
        steps: Optional[int] = None,
        samples: int = 1,
        samples_per_pass: Optional[int] = None,
    ) -> dict[str, SampleResult]:
        """K DDIM samples per video and stream (the encoders run once per video).

        Args:
            features: stream -> (B, D_s, T) as read (standardised here when
                ``dataset.standardize`` is on).
            mask: (B, T) bool.
            generators: stream -> K * B generators, sample-major (row k * B + b is sample k of
                video b): one per (video, stream, sample), so no stream or sample draws from
                another's generator.
            steps: DDIM steps (default: the config's ``num_inference_steps``).
            samples: K.
            samples_per_pass: the decoders run on this many of the K samples at a time (the
                encoders once for all; ``eval.samples_per_pass``); None = all K in one pass.
                The same result to float tolerance: each row has its own generator.

        In eval mode with a fast backend (:mod:`twostream_das.modules.backends`), streams of
        the same structure run as one stacked pass (:mod:`twostream_das.stacked`, built for this
        call); otherwise one after the other. Same result to float tolerance, the same draws.

        Returns:
            stream -> :class:`SampleResult` of (K, B, C, T) float32 tensors.
        """
        names = self.stream_names
        if not isinstance(generators, Mapping) or set(generators) != set(names):
            given = sorted(generators) if isinstance(generators, Mapping) else type(generators)
            raise ValueError(f"need stream -> generators for the streams {names}; got {given}")
        features = self.standardized(features, mask)
        if not self.training and current_backend() is not Backend.REFERENCE and self._stackable():
            return self._sample_stacked(
                features, mask, generators, steps, samples, samples_per_pass
            )
        return {
            s: self.streams[s].sample(
                features[s], mask, generators[s], steps, samples, samples_per_pass
            )
            for s in names
        }

    def predict_proba(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        generators: Mapping[str, Sequence[torch.Generator]],
        steps: Optional[int] = None,
    ) -> dict[str, torch.Tensor]:
        """One DDIM sample per video and stream (``generators``: stream -> one per video):
        stream -> (B, C, T) float32 probabilities of the final x0 estimate (:meth:`sample`)."""
        out = self.sample(features, mask, generators, steps, 1)
        return {s: result.probs[0] for s, result in out.items()}

    def _stackable(self) -> bool:
        """All streams have the same network shapes (bar the input size), label space and
        sampling settings."""
        first, *others = self.streams.values()
        if not others or first.diffact_outside:  # one stream; or attention the stack lacks
            return False
        abar = first.diffusion.schedule.alphas_cumprod
        return self._same_networks() and all(
            s.encoder.cond_blocks == first.encoder.cond_blocks
            and s.diffusion.signal_scale == first.diffusion.signal_scale
            and torch.equal(s.diffusion.schedule.alphas_cumprod, abar)
            and s.sampling == first.sampling
            for s in others
        )

    def _same_networks(self) -> bool:
        def shapes(stream: DiffusionStream) -> list[tuple[str, tuple[int, ...]]]:
            return [
                (k, tuple(v.shape))
                for k, v in stream.named_parameters()
                if not k.startswith("encoder.proj_in.")
            ]

        first, *others = (shapes(s) for s in self.streams.values())
        return all(other == first for other in others)

    @torch.inference_mode()
    def _sample_stacked(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        generators: Mapping[str, Sequence[torch.Generator]],
        steps: Optional[int],
        samples: int,
        samples_per_pass: Optional[int] = None,
    ) -> dict[str, SampleResult]:
        """All streams' DDIM as one stacked pass: the encoders on G * B rows, the decoders on
        N = G * k * B rows per pass of k samples (stream-major, then sample, then video); the
        stacked weights are built here, for this call."""
        names = self.stream_names
        streams = [self.streams[s] for s in names]
        first, count = streams[0], len(streams)
        batch_size, _, frames = features[names[0]].shape
        rows = samples * batch_size  # per stream
        for name in names:
            if len(generators[name]) != rows:
                raise ValueError(
                    f"need one generator per video and sample: {batch_size} videos x {samples} "
                    f"samples, {len(generators[name])} given for {name}"
                )
        lengths = [int(n) for n in mask.sum(dim=1).tolist()]  # (B,) real frames
        dtype = features[names[0]].dtype
        scheduler = first.scheduler(steps)
        timesteps = tuple(scheduler.timesteps)
        encoder = StackedEncoder([s.encoder for s in streams], batch_size)
        enc_mask = stacked_frame_mask(mask, count, dtype)  # (G * B, T)
        cond = encoder.conditioning(
            [features[s] for s in names], enc_mask, KeyMasks(enc_mask.valid)
        )  # (G * B, Dc, T), once for all the samples
        decoders: dict[int, tuple[StackedDecoder, list[torch.Tensor], FrameMask, KeyMasks]] = {}
        parts = []
        for chunk in sample_passes(samples, samples_per_pass):  # the samples of one pass
            k = len(chunk)
            if k not in decoders:  # at most two sizes: the pass and the remainder
                decoder = StackedDecoder([s.decoder for s in streams], k * batch_size, timesteps)
                fmask = enc_mask if k == 1 else stacked_frame_mask(mask, count * k, dtype)
                # qkv_in: per block (G * k * B, 3F, T), shared by a video's samples
                decoders[k] = (decoder, decoder.prepare(cond), fmask, KeyMasks(fmask.valid))
            decoder, qkv_in, fmask, key_masks = decoders[k]
            rows_of = slice(chunk.start * batch_size, chunk.stop * batch_size)
            parts.append(sample(
                lambda x_in, t, d=decoder, q=qkv_in, m=fmask, km=key_masks: d.denoise(
                    x_in, t, q, m, km),
                scheduler,
                first.diffusion,
                (count * k * batch_size, first.num_classes, frames),
                [g for s in names for g in generators[s][rows_of]],
                lengths * (count * k),
                mask.device,
            ).reshape(count, k, batch_size, first.num_classes, frames))  # fmt: skip
        out = concat_results(parts, dim=1)  # (G, K, B, C, T)
        return {
            s: SampleResult(out.probs[i], out.trajectory_mean[i]) for i, s in enumerate(names)
        }
