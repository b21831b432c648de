"""One modality's model: encoder + condition masks + decoder + diffusion (METHOD.md section 3).

Training (:meth:`DiffusionStream.loss`), per sample b of the batch:

    logits_enc, cond = encoder(features)
    n_b ~ U{0, N-1};  eps ~ N(0, I)                         from the generator, in this order,
    x_n = sqrt(abar_n) x0 + sqrt(1 - abar_n) eps             then the condition masks
    x0_logits = decoder(model_input(x_n), n, cond * condition_mask)
    loss = stream_loss(logits_enc, x0_logits, ...)

Inference (:meth:`DiffusionStream.sample`): the encoder once, the decoder's per-video context
once, then the sampling loop (:func:`twostream_das.diffusion.sample`) from pure noise with the
sampler the call gives (its steps set: the number of steps is a sampling choice, not part of the
model), K samples per video as one batch; the result is the softmax of the decoder's logits at
the last step (DiffAct's output: its final x0 estimate mapped back from [-s, s] to [0, 1] is
exactly that softmax), and its mean over the trajectory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

from ..config import AttentionOutside, Config, LossConfig, MaskConfig
from ..diffusion import Denoiser, GaussianDiffusion, Sampler, SampleResult, sample_in_passes
from .decoder import Decoder, DecoderContext
from .encoder import Encoder
from .losses import StreamLoss, stream_loss
from .masking import sample_condition_mask

if TYPE_CHECKING:
    from ..data.collate import Batch


class DiffusionStream(nn.Module):
    """Args:
    encoder, decoder, diffusion: the parts (the decoder's cond_dim = the encoder's).
    masks: condition-mask strategies for training.
    loss_cfg: loss weights.
    """

    def __init__(
        self,
        encoder: Encoder,
        decoder: Decoder,
        diffusion: GaussianDiffusion,
        masks: MaskConfig,
        loss_cfg: LossConfig,
    ) -> None:
        super().__init__()
        if decoder.cond_dim != encoder.cond_dim:
            raise ValueError(
                f"decoder cond_dim {decoder.cond_dim} != encoder cond_dim {encoder.cond_dim}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.diffusion = diffusion
        self.masks = masks
        self.loss_cfg = loss_cfg
        self.num_classes = decoder.num_classes

    @classmethod
    def from_config(cls, cfg: Config, in_dim: int, num_classes: int) -> DiffusionStream:
        """Build a stream for ``in_dim``-d features and ``num_classes`` classes."""
        diffact = cfg.model.attention_outside is AttentionOutside.DIFFACT
        encoder = Encoder(in_dim, num_classes, cfg.model.encoder, diffact)
        decoder = Decoder(num_classes, encoder.cond_dim, cfg.model.decoder, diffact)

        diffusion = GaussianDiffusion.from_config(cfg.model.diffusion)
        return cls(encoder, decoder, diffusion, cfg.model.masks, cfg.loss)

    @property
    def diffact_outside(self) -> bool:
        """Whether the blocks use DiffAct's attention at the sequence ends."""
        return any(b.diffact_outside for b in (*self.encoder.blocks, *self.decoder.blocks))

    @property
    def in_dim(self) -> int:
        return self.encoder.in_dim

    def loss(
        self,
        features: torch.Tensor,
        batch: Batch,
        class_weights: Optional[torch.Tensor],
        generators: Sequence[torch.Generator],
    ) -> StreamLoss:
        """Training loss on one batch.

        Args:
            features: (B, D, T) this stream's features (``batch.features[stream]``).
            batch: labels (B, T), boundary (B, T), mask (B, T) of the same samples.
            class_weights: (C,) or None.
            generators: one per sample, from which sample b draws its step, its noise (C x
                its real length) and its condition mask, so its draws depend neither on its
                batch mates nor on the padded length (what makes a batch split over DDP ranks
                equal to the batch in one process).
        """
        labels, boundary, mask = batch.labels, batch.boundary, batch.mask
        encoded = self.encoder(features, mask)  # logits (B, C, T), cond (B, Dc, T)
        t, noise, keep = self._draw(labels, boundary, mask, generators)  # (B,), (B,C,T), (B,T)
        x0 = self.diffusion.labels_to_x0(labels, self.num_classes)  # (B, C, T)
        x_t = self.diffusion.q_sample(x0, t, noise)  # (B, C, T)
        cond = encoded.cond * keep[:, None, :].to(encoded.cond.dtype)  # (B, Dc, T)
        x0_logits = self.decoder(self.diffusion.model_input(x_t), t, cond, mask)  # (B, C, T)
        return stream_loss(
            encoded.logits, x0_logits, labels, boundary, mask, class_weights, self.loss_cfg
        )

    def _draw(
        self,
        labels: torch.Tensor,
        boundary: torch.Tensor,
        mask: torch.Tensor,
        generators: Sequence[torch.Generator],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The training draws: timesteps (B,) long, noise (B, C, T), condition mask (B, T)
        float, all on ``labels.device``, sample b's from ``generators[b]`` (see :meth:`loss`)."""
        device = labels.device
        if isinstance(generators, torch.Generator) or len(generators) != labels.shape[0]:
            given = 1 if isinstance(generators, torch.Generator) else len(generators)
            raise ValueError(
                f"need one generator per sample: {labels.shape[0]} samples, {given} given"
            )
        steps, noises, keeps = [], [], []
        for b, gen in enumerate(generators):
            length = int(mask[b].sum())
            steps.append(self.diffusion.sample_timesteps(1, gen).to(device))  # (1,)
            noise = torch.zeros(self.num_classes, labels.shape[1], device=device)  # (C, T)
            noise[:, :length] = torch.randn(
                self.num_classes, length, generator=gen, device=gen.device
            ).to(device)
            noises.append(noise)
            keeps.append(
                sample_condition_mask(
                    self.masks.strategies,
                    labels[b : b + 1],
                    boundary[b : b + 1],
                    mask[b : b + 1],
                    self.masks,
                    gen,
                    self.num_classes,
                )
            )  # (1, T)
        return torch.cat(steps), torch.stack(noises), torch.cat(keeps)

    @torch.inference_mode()
    def sample(
        self,
        features: torch.Tensor,
        mask: torch.Tensor,
        generators: Sequence[torch.Generator],
        sampler: Sampler,
        samples: int = 1,
        samples_per_pass: Optional[int] = None,
    ) -> SampleResult:
        """K DDIM samples per video, in passes of ``samples_per_pass`` samples (None: one batch
        of K * B rows); the encoder runs once.

        Call in eval mode (dropout off). Row k * B + b (sample k of video b) draws its noise
        from ``generators[k * B + b]`` only, at the video's real length, so its result does not
        depend on its batch mates nor on how the samples are split into passes.

        Args:
            features: (B, D, T).
            mask: (B, T) bool, True = real frame.
            generators: K * B, sample-major.
            sampler: the steps and their updates, timesteps set
                (:func:`~twostream_das.diffusion.make_sampler`).
            samples: K.
            samples_per_pass: samples per decoder pass (``eval.samples_per_pass``).

        Returns:
            :class:`SampleResult` of (K, B, C, T) float32 tensors.
        """
        batch_size, _, frames = features.shape
        if len(generators) != samples * batch_size:
            raise ValueError(
                f"need one generator per video and sample: {batch_size} videos x {samples} "
                f"samples, {len(generators)} given"
            )
        cond = self.encoder(features, mask).cond  # (B, Dc, T), once for all the samples

        contexts: dict[int, DecoderContext] = {}  # samples per pass -> its rows' context

        def denoiser_for(k: int) -> Denoiser:  # at most two sizes: the pass and the remainder
            if k not in contexts:
                contexts[k] = self.decoder.prepare(cond.repeat(k, 1, 1), mask.repeat(k, 1))

            def denoise(x_in: torch.Tensor, t: int) -> torch.Tensor:
                step = torch.full((k * batch_size,), t, dtype=torch.long, device=x_in.device)
                return self.decoder.denoise(x_in, step, contexts[k])

            return denoise

        out = sample_in_passes(
            denoiser_for, sampler, self.diffusion, (1, batch_size, self.num_classes, frames),
            [generators], samples, samples_per_pass, mask.sum(dim=1).tolist(), features.device,
        )  # fmt: skip  # (1, K, B, C, T)
        return SampleResult(out.probs[0], out.trajectory_mean[0])

    def predict_proba(
        self,
        features: torch.Tensor,
        mask: torch.Tensor,
        generators: Sequence[torch.Generator],
        sampler: Sampler,
    ) -> torch.Tensor:
        """One sample per video (``generators``: one per video): (B, C, T) float32
        probabilities of the final x0 estimate (see :meth:`sample`)."""
        return self.sample(features, mask, generators, sampler, 1).probs[0]
