"""2s-DAS: two :class:`DiffusionStream` s, one per modality, built from one config.

The streams are identical in structure, with their own input dimension and weights; training
minimises ``L = L_rgb + L_flow`` in one backward pass; inference returns each stream's
probabilities, which :func:`twostream_das.fusion.fuse` combines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Optional, TypeVar

import torch
from torch import nn

from .config import STREAMS, Config
from .diffusion.ddim import Generators
from .stacked import KeyMasks, StackedDecoder, StackedEncoder, stacked_frame_mask
from .stream import DiffusionStream

if TYPE_CHECKING:
    from .data.collate import Batch


_T = TypeVar("_T")


class TwoStreamLoss(NamedTuple):
    """Attributes:
    total: 0-dim, L_rgb + L_flow.
    terms: ``"<stream>/<term>"`` -> unweighted term, and ``"<stream>/total"`` -> L_stream;
        detached 0-dim tensors.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class TwoStreamModel(nn.Module):
    """Args: streams: one :class:`DiffusionStream` per name of ``STREAMS``."""

    def __init__(self, streams: Mapping[str, DiffusionStream]) -> None:
        super().__init__()
        if set(streams) != set(STREAMS):
            raise ValueError(f"streams {sorted(streams)} must be exactly {STREAMS}")
        self.streams = nn.ModuleDict({s: streams[s] for s in STREAMS})
        # the stacked inference networks and the stackability check, kept while the weights
        # are unchanged (see _weights_token): rebuilding them cost ~10 ms per call
        self._stacked_cache: dict[str, tuple[object, object]] = {}

    @classmethod
    def from_config(
        cls, cfg: Config, in_dims: Mapping[str, int], num_classes: int
    ) -> TwoStreamModel:
        """Args: in_dims: stream -> feature dimension (read from the data); num_classes: C."""
        if set(in_dims) != set(STREAMS):
            raise ValueError(f"in_dims {dict(in_dims)} must have exactly the keys {STREAMS}")
        return cls({s: DiffusionStream.from_config(cfg, in_dims[s], num_classes) for s in STREAMS})

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
        """L_rgb + L_flow on one batch (both streams see the same samples).

        ``generator``: one, or one per sample (see :meth:`DiffusionStream.loss`); the streams
        draw from it in ``STREAMS`` order.
        """
        total: Optional[torch.Tensor] = None
        terms: dict[str, torch.Tensor] = {}
        for name in STREAMS:
            out = self.streams[name].loss(batch.features[name], batch, class_weights, generator)
            total = out.total if total is None else total + out.total
            terms.update({f"{name}/{key}": value for key, value in out.terms.items()})
            terms[f"{name}/total"] = out.total.detach()
        assert total is not None
        return TwoStreamLoss(total, terms)

    def predict_proba(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        generators: Sequence[torch.Generator],
        batch_streams: bool = True,
        precompute_cond: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Each stream's DDIM probabilities.

        Args:
            features: stream -> (B, D_s, T).
            mask: (B, T) bool.
            generators: one per video, shared by the streams (``STREAMS`` order: the RGB stream
                draws first, then FLOW continues from the same generators).
            batch_streams: run both streams as one stacked pass (:mod:`twostream_das.stacked`)
                when they have the same structure and the model is in eval mode; same result
                to float tolerance, the same draws from the generators. False runs the streams
                one after the other.
            precompute_cond: for the one-after-the-other path, see
                :meth:`DiffusionStream.predict_proba`.

        Returns:
            stream -> (B, C, T) float32 probabilities.
        """
        if batch_streams and not self.training:
            token = self._weights_token()  # once per call: ~0.6 ms at GTEA size
            if self._stackable(token):
                return self._predict_stacked(features, mask, generators, token)
        return {
            s: self.streams[s].predict_proba(features[s], mask, generators, precompute_cond)
            for s in STREAMS
        }

    def _weights_token(self) -> tuple[tuple[object, ...], ...]:
        """Changes whenever any parameter does: replaced, moved, cast, or written in place
        (optimiser steps, ``load_state_dict``; each bumps the tensor's version counter)."""
        return tuple(
            (p.data_ptr(), p._version, p.dtype, p.device, tuple(p.shape))
            for p in self.parameters()
        )

    def _cached(self, name: str, key: object, weights: object, build: Callable[[], _T]) -> _T:
        """``build()``, kept under ``name`` while ``weights`` (a :meth:`_weights_token`) and
        ``key`` are unchanged."""
        token = (weights, key)
        hit = self._stacked_cache.get(name)
        if hit is None or hit[0] != token:
            hit = (token, build())
            self._stacked_cache[name] = hit
        return hit[1]  # type: ignore[return-value]

    def _stackable(self, weights: object = None) -> bool:
        """Both streams have the same network shapes (bar the input size) and sampler;
        ``weights``: this call's :meth:`_weights_token` (default: taken here)."""
        a, b = (self.streams[s] for s in STREAMS)
        weights = self._weights_token() if weights is None else weights
        return (
            self._cached("stackable", None, weights, self._same_networks)
            and a.encoder.cond_blocks == b.encoder.cond_blocks
            and a.diffusion.signal_scale == b.diffusion.signal_scale
            and a.sampler.timesteps == b.sampler.timesteps
            and a.sampler.eta == b.sampler.eta
        )

    def _same_networks(self) -> bool:
        a, b = (self.streams[s] for s in STREAMS)

        def shapes(stream: DiffusionStream) -> list[tuple[str, tuple[int, ...]]]:
            return [
                (k, tuple(v.shape))
                for k, v in stream.state_dict().items()
                if not k.startswith("encoder.proj_in.")
            ]

        return shapes(a) == shapes(b)

    @torch.inference_mode()
    def _predict_stacked(
        self,
        features: Mapping[str, torch.Tensor],
        mask: torch.Tensor,
        generators: Sequence[torch.Generator],
        weights: object,
    ) -> dict[str, torch.Tensor]:
        """Both streams' DDIM as one stacked pass (N = G * B rows, stream-major); ``weights``:
        this call's :meth:`_weights_token`, which keys the stacked networks.

        The draws are those of the sequential path: each stream gets its own copies of the
        per-video generators, FLOW's advanced past everything RGB draws, and the callers'
        generators end in FLOW's final state.
        """
        streams = [self.streams[s] for s in STREAMS]
        first = streams[0]
        batch_size, _, frames = features[STREAMS[0]].shape
        if len(generators) != batch_size:
            raise ValueError(
                f"need one generator per video: {batch_size} videos, {len(generators)} given"
            )
        lengths = [int(n) for n in mask.sum(dim=1).tolist()]  # (B,) real frames
        dtype = features[STREAMS[0]].dtype
        fmask = stacked_frame_mask(mask, len(streams), dtype)
        key_masks = KeyMasks(fmask.valid)
        timesteps = tuple(first.sampler.timesteps)
        encoder, decoder = self._cached(
            "networks",
            (batch_size, timesteps),
            weights,
            lambda: (
                StackedEncoder([s.encoder for s in streams], batch_size),
                StackedDecoder([s.decoder for s in streams], batch_size, timesteps),
            ),
        )
        cond = encoder.conditioning([features[s] for s in STREAMS], fmask, key_masks)  # (N, Dc, T)
        qkv_in = decoder.prepare(cond)  # per block (N, 3F, T)
        del cond
        stream_gens = _fork_streams(first, generators, lengths, len(streams))
        all_gens = [g for gens in stream_gens for g in gens]  # N, stream-major
        all_lengths = lengths * len(streams)
        shape = (len(all_gens), first.num_classes, frames)
        x = first.sampler.initial_noise(shape, all_gens, all_lengths, mask.device)  # (N, C, T)
        logits = x
        for t in first.sampler.timesteps:
            logits = decoder.denoise(first.diffusion.model_input(x), t, qkv_in, fmask, key_masks)
            x0 = first.diffusion.logits_to_x0(logits)  # (N, C, T) in [-s, s]
            x = first.sampler.step(x0, t, x, all_gens, all_lengths)
        for original, last in zip(generators, stream_gens[-1], strict=True):
            original.set_state(last.get_state())
        probs = torch.softmax(logits.float(), dim=1).split(batch_size)  # G x (B, C, T)
        return dict(zip(STREAMS, probs, strict=True))


def _copies(generators: Sequence[torch.Generator]) -> list[torch.Generator]:
    """New generators in the same states (on the same devices)."""
    out = []
    for gen in generators:
        copy = torch.Generator(device=gen.device)
        copy.set_state(gen.get_state())
        out.append(copy)
    return out


def _fork_streams(
    stream: DiffusionStream,
    generators: Sequence[torch.Generator],
    lengths: Sequence[int],
    count: int,
) -> list[list[torch.Generator]]:
    """Per stream, per-video generators in the state the sequential path would start that
    stream with: stream 0 at the callers' states, stream i+1 after stream i's draws."""
    forks = [_copies(generators)]
    for _ in range(count - 1):
        advanced = _copies(forks[-1])
        stream.sampler.skip_sampling(advanced, lengths, stream.num_classes)
        forks.append(advanced)
    return forks
