"""2s-DAS: one :class:`DiffusionStream` per configured stream (``dataset.streams``: RGB and
FLOW in the presets; one stream is DiffAct), built from one config.

The streams are identical in structure, with their own input dimension and weights; training
minimises ``L = sum_s L_s`` (``L_rgb + L_flow``) in one backward pass; inference
(:meth:`MultiStreamModel.sample`) returns each stream's DDIM samples, whose probabilities
:func:`twostream_das.prediction.fusion.fuse` combines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Optional, Protocol

import torch
from torch import nn

from ..config import Config, stream_names
from ..diffusion import Sampler, SampleResult, sample_in_passes
from ..diffusion.sampling import Consensus, Denoiser
from ..prediction.fusion import JointFusion
from .standardize import FeatureStandardizer
from .stream import DiffusionStream

if TYPE_CHECKING:
    from ..data.collate import Batch


class MultiStreamLoss(NamedTuple):
    """Attributes:
    total: 0-dim, the sum of the streams' losses (L_rgb + L_flow).
    terms: ``"<stream>/<term>"`` -> unweighted term, and ``"<stream>/total"`` -> L_stream;
        detached 0-dim tensors.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class StreamDenoisers(Protocol):
    """The G streams' networks inside one sampling loop, their encoders already run."""

    def for_samples(self, k: int) -> Denoiser:
        """The denoiser of a pass of k samples: x_in (G * k * B, C, T) (stream-major, then
        sample, then video), t -> (G * k * B, C, T) x0 logits."""
        ...


StreamStrategy = Callable[
    [Sequence[DiffusionStream], Sequence[torch.Tensor], torch.Tensor, Sequence[int]],
    StreamDenoisers,
]
"""How the streams' networks run in one sampling loop: (streams, their features (B, D_s, T) in
the streams' order, mask (B, T), the sampler's timesteps) -> :class:`StreamDenoisers`. The model
has one, :class:`StreamByStream`; prediction chooses (it has the stacked streams,
:func:`twostream_das.prediction.stacked.choose_strategy`)."""


class MultiStreamModel(nn.Module):
    """The streams' composition: one or more (the paper's 2s-DAS has two, RGB and FLOW).

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
    ) -> MultiStreamModel:
        """Args: in_dims: stream -> feature dimension (read from the data), naming exactly the
        streams of ``dataset.streams``; num_classes: C."""
        names = stream_names(cfg)
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
        generators: Sequence[torch.Generator],
    ) -> MultiStreamLoss:
        """Same as :meth:`loss`: ``forward`` is what ``DistributedDataParallel`` wraps."""
        return self.loss(batch, class_weights, generators)

    def loss(
        self,
        batch: Batch,
        class_weights: Optional[torch.Tensor],
        generators: Sequence[torch.Generator],
    ) -> MultiStreamLoss:
        """``sum_s L_s`` on one batch (all streams see the same samples).

        ``generators``: one per sample (see :meth:`DiffusionStream.loss`); the streams draw
        from them in their order.
        """
        total: Optional[torch.Tensor] = None
        terms: dict[str, torch.Tensor] = {}
        features = self.standardized(batch.features, batch.mask)
        for name in self.stream_names:
            out = self.streams[name].loss(features[name], batch, class_weights, generators)
            total = out.total if total is None else total + out.total
            terms.update({f"{name}/{key}": value for key, value in out.terms.items()})
            terms[f"{name}/total"] = out.total.detach()
        assert total is not None
        return MultiStreamLoss(total, terms)

    @property
    def stream_names(self) -> list[str]:
        return list(self.streams)

    def sample(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        generators: Mapping[str, Sequence[torch.Generator]],
        sampler: Sampler,
        samples: int = 1,
        samples_per_pass: Optional[int] = None,
        strategy: Optional[StreamStrategy] = None,
        encoded: Optional[StreamDenoisers] = None,
    ) -> dict[str, SampleResult]:
        """K DDIM samples per video and stream (the encoders run once per video).

        Args:
            features: stream -> (B, D_s, T) as read (standardised here when
                ``dataset.standardize`` is on).
            mask: (B, T) bool.
            generators: stream -> K * B generators, sample-major (row k * B + b is sample k of
                video b): one per (video, stream, sample), so no stream or sample draws from
                another's generator.
            sampler: the steps and their updates, timesteps set
                (:func:`~twostream_das.diffusion.make_sampler`).
            samples: K.
            samples_per_pass: the decoders run on this many of the K samples at a time (the
                encoders once for all; ``eval.samples_per_pass``); None = all K in one pass.
                The same result to float tolerance: each row has its own generator.
            strategy: how the streams' networks run, all in one sampling loop (prediction's
                stacked streams, :mod:`twostream_das.prediction.stacked`); None: each stream
                its own loop (:meth:`DiffusionStream.sample`). Same result to float tolerance,
                the same draws.
            encoded: :meth:`encode` of these features, mask and sampler (shared with another
                run on the same batch, e.g. :meth:`sample_joint`'s); None: encoded here.

        Returns:
            stream -> :class:`SampleResult` of (K, B, C, T) float32 tensors.
        """
        names = self.stream_names
        if not isinstance(generators, Mapping) or set(generators) != set(names):
            given = sorted(generators) if isinstance(generators, Mapping) else type(generators)
            raise ValueError(f"need stream -> generators for the streams {names}; got {given}")
        if encoded is not None or strategy is not None:
            encoded = encoded or self.encode(features, mask, sampler, strategy)
            return self._sample_together(
                encoded, mask, generators, sampler, samples, samples_per_pass
            )
        features = self.standardized(features, mask)
        return {
            s: self.streams[s].sample(
                features[s], mask, generators[s], sampler, samples, samples_per_pass
            )
            for s in names
        }

    def predict_proba(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        generators: Mapping[str, Sequence[torch.Generator]],
        sampler: Sampler,
        strategy: Optional[StreamStrategy] = None,
    ) -> dict[str, torch.Tensor]:
        """One DDIM sample per video and stream (``generators``: stream -> one per video):
        stream -> (B, C, T) float32 probabilities of the final x0 estimate (:meth:`sample`)."""
        out = self.sample(features, mask, generators, sampler, 1, strategy=strategy)
        return {s: result.probs[0] for s, result in out.items()}

    def sample_joint(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        generators: Mapping[str, Sequence[torch.Generator]],
        fusion: JointFusion,
        sampler: Sampler,
        samples: int = 1,
        samples_per_pass: Optional[int] = None,
        strategy: Optional[StreamStrategy] = None,
        encoded: Optional[StreamDenoisers] = None,
    ) -> SampleResult:
        """K DDIM samples per video with the streams fused inside the sampler
        (``fusion.sampling = joint``, :class:`~twostream_das.prediction.fusion.JointFusion`): at
        every step
        each stream's update continues from the fused x0 estimate. Arguments as :meth:`sample`
        (``strategy`` None: :class:`StreamByStream`; ``encoded``: :meth:`encode`'s, shared with
        another run on the same batch); ``fusion.streams`` must be the model's streams in order.

        Returns:
            :class:`SampleResult` of (K, B, C, T) float32: the fused probabilities of the last
            step and their mean over the steps.
        """
        names = self.stream_names
        if tuple(fusion.streams) != tuple(names):
            raise ValueError(f"joint fusion over {fusion.streams}; the model's streams are {names}")
        if not self._same_label_space():
            raise ValueError(
                "fusion.sampling = joint needs streams with one label space "
                "(classes, signal scale and noise schedule)"
            )
        encoded = encoded or self.encode(features, mask, sampler, strategy)
        out = self._sample_together(
            encoded, mask, generators, sampler, samples, samples_per_pass, fusion
        )
        first = names[0]  # every stream's rows hold the same consensus
        return out[first]

    @torch.inference_mode()
    def encode(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        sampler: Sampler,
        strategy: Optional[StreamStrategy] = None,
    ) -> StreamDenoisers:
        """What sampling computes once per batch, for :meth:`sample` and :meth:`sample_joint`
        to share (``encoded=``): the features standardised, every stream's encoder run, its
        decoder's per-video context built on first use, as ``strategy`` runs the networks
        (None: :class:`StreamByStream`). Valid for this batch and ``sampler``'s timesteps.

        Args:
            features: stream -> (B, D_s, T) as read; mask: (B, T) bool.
        """
        features = self.standardized(features, mask)
        names = self.stream_names
        streams = [self.streams[s] for s in names]
        build = strategy or StreamByStream
        return build(streams, [features[s] for s in names], mask, sampler.timesteps)

    def stackable(self) -> bool:
        """Whether the streams can run as one stacked network: two or more, the same network
        shapes (bar the input size), label space, conditioning blocks and handling of the
        attention at the sequence ends (``diffact_outside``: the stack runs one geometry per
        block)."""
        first = next(iter(self.streams.values()))
        if len(self.streams) < 2:
            return False
        same_blocks = all(
            (s.encoder.cond_blocks, s.diffact_outside)
            == (first.encoder.cond_blocks, first.diffact_outside)
            for s in self.streams.values()
        )
        return same_blocks and self._same_networks() and self._same_label_space()

    def _same_label_space(self) -> bool:
        """All streams have the same classes, signal scale and noise schedule."""
        first, *others = self.streams.values()
        abar = first.diffusion.schedule.alphas_cumprod
        return all(
            s.num_classes == first.num_classes
            and s.diffusion.signal_scale == first.diffusion.signal_scale
            and torch.equal(s.diffusion.schedule.alphas_cumprod, abar)
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
    def _sample_together(
        self,
        encoded: StreamDenoisers,
        mask: torch.Tensor,
        generators: Mapping[str, Sequence[torch.Generator]],
        sampler: Sampler,
        samples: int,
        samples_per_pass: Optional[int],
        consensus: Optional[Consensus] = None,
    ) -> dict[str, SampleResult]:
        """All streams' DDIM in one loop over N = G * k * B rows per pass of k samples
        (stream-major, then sample, then video), on the networks of ``encoded`` (its encoders
        run once for all samples). With ``consensus`` the rows' x0 estimates are fused at every
        step."""
        names = self.stream_names
        first, count = self.streams[names[0]], len(names)
        batch_size, frames = mask.shape
        rows = samples * batch_size  # per stream
        for name in names:
            if len(generators[name]) != rows:
                raise ValueError(
                    f"need one generator per video and sample: {batch_size} videos x {samples} "
                    f"samples, {len(generators[name])} given for {name}"
                )
        out = sample_in_passes(
            encoded.for_samples, sampler, first.diffusion,
            (count, batch_size, first.num_classes, frames), [generators[s] for s in names],
            samples, samples_per_pass, mask.sum(dim=1).tolist(), mask.device, consensus,
        )  # fmt: skip  # (G, K, B, C, T)
        return {
            s: SampleResult(out.probs[i], out.trajectory_mean[i]) for i, s in enumerate(names)
        }


class StreamByStream:
    """The G streams' own networks, one after the other within each step (a
    :data:`StreamStrategy`): the encoders run once here; :meth:`for_samples` gives the denoiser
    of G * k * B rows (stream-major). Arguments as :data:`StreamStrategy`."""

    def __init__(
        self,
        streams: Sequence[DiffusionStream],
        features: Sequence[torch.Tensor],
        mask: torch.Tensor,
        timesteps: Sequence[int] = (),
    ) -> None:
        self.streams, self.mask = streams, mask
        self.conds = [
            st.encoder(x, mask).cond for st, x in zip(streams, features, strict=True)
        ]  # per stream (B, Dc, T)
        self._passes: dict[int, Denoiser] = {}

    def for_samples(self, k: int) -> Denoiser:
        if k not in self._passes:
            contexts = [
                st.decoder.prepare(c.repeat(k, 1, 1), self.mask.repeat(k, 1))
                for st, c in zip(self.streams, self.conds, strict=True)
            ]
            streams = self.streams

            def denoise(x_in: torch.Tensor, t: int) -> torch.Tensor:
                parts = x_in.chunk(len(streams))  # per stream (k * B, C, T)
                step = torch.full((parts[0].shape[0],), t, dtype=torch.long, device=x_in.device)
                return torch.cat([
                    st.decoder.denoise(x, step, ctx)
                    for st, x, ctx in zip(streams, parts, contexts, strict=True)
                ])  # fmt: skip

            self._passes[k] = denoise
        return self._passes[k]
