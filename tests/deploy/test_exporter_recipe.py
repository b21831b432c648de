"""docs/ARCHITECTURE.md's recipe for an exporter, done: a stream's three graphs (encoder, the
decoder's per-video context, the decoder's step) traced under the reference backend with a
dynamic batch and number of frames, then the host's sampling loop over the exported decoder
against the model's own sampling, on a padded batch of other sizes than the traced one."""

from __future__ import annotations

import torch
from torch import nn

from _model_helpers import sampler, small_config
from twostream_das.diffusion import sample
from twostream_das.kernels import frame_mask, use_backend, window_key_mask
from twostream_das.model.decoder import DecoderContext
from twostream_das.model.multi_stream import MultiStreamModel


class Encoder(nn.Module):
    """features (B, D, T), mask (B, T) -> cond (B, Dc, T)."""

    def __init__(self, stream):
        super().__init__()
        self.encoder = stream.encoder

    def forward(self, features, mask):
        return self.encoder(features, mask).cond


class Context(nn.Module):
    """cond (B, Dc, T) -> per decoder block (B, 3F, T)."""

    def __init__(self, stream):
        super().__init__()
        self.decoder = stream.decoder

    def forward(self, cond):
        return tuple(block.project_cond(cond) for block in self.decoder.blocks)


class Step(nn.Module):
    """x (B, C, T), t (B,), mask (B, T), *context -> x0 logits (B, C, T)."""

    def __init__(self, stream):
        super().__init__()
        self.decoder = stream.decoder

    def forward(self, x, t, mask, *context):
        fmask = frame_mask(mask, x.dtype)
        keys = tuple(window_key_mask(fmask.valid, b.kernel_size, b.dilation)
                     for b in self.decoder.blocks)  # fmt: skip
        return self.decoder.denoise(x, t, DecoderContext(fmask, keys, tuple(context)))


def _batch(dim, lengths, seed):
    frames = max(lengths)
    mask = torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    features = torch.randn(len(lengths), dim, frames, generator=torch.Generator().manual_seed(seed))
    return features * mask[:, None, :], mask


def test_an_exporter_traces_three_graphs_and_the_host_loop_gives_the_models_samples():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MultiStreamModel.from_config(small_config(), {"rgb": 7, "flow": 5}, 4).eval()
    stream = model.streams["rgb"]
    batch = frames = torch.export.Dim.DYNAMIC  # sizes the program takes at run time
    btc, bt = {0: batch, 2: frames}, {0: batch, 1: frames}
    features, mask = _batch(7, [21, 15], 0)  # the tracing batch
    with use_backend("reference"), torch.no_grad():  # step 1: the spec, B and T dynamic
        cond = stream.encoder(features, mask).cond
        context = Context(stream)(cond)
        x, t = torch.randn(2, 4, 21), torch.tensor([999, 40])
        graphs = {
            "encoder": torch.export.export(Encoder(stream), (features, mask),
                                           dynamic_shapes=(btc, bt)),
            "decoder_context": torch.export.export(Context(stream), (cond,),
                                                   dynamic_shapes=(btc,)),
            "decoder": torch.export.export(
                Step(stream), (x, t, mask, *context),
                dynamic_shapes=(btc, {0: batch}, bt, tuple([btc] * len(context)))),
        }  # fmt: skip
    run = {role: program.module() for role, program in graphs.items()}

    features, mask = _batch(7, [30, 26, 9], 1)  # step 3: other sizes, padded
    steps = sampler()
    gens = [torch.Generator().manual_seed(5 + b) for b in range(3)]
    with torch.no_grad():
        context = run["decoder_context"](run["encoder"](features, mask))

        def denoise(x_in, t):
            return run["decoder"](x_in, torch.full((3,), t), mask, *context)

        lengths = mask.sum(dim=1).tolist()
        host = sample(denoise, steps, stream.diffusion, (3, 4, 30), gens, lengths)
    with use_backend("reference"):
        want = stream.sample(features, mask, [torch.Generator().manual_seed(5 + b)
                                              for b in range(3)], steps)  # fmt: skip
    for b, n in enumerate(lengths):
        torch.testing.assert_close(host.probs[b, :, :n], want.probs[0, b, :, :n],
                                   atol=1e-5, rtol=1e-4)  # fmt: skip
