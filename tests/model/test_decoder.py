import torch

from _model_helpers import lengths_mask, pad_batch, small_config
from twostream_das.model.decoder import Decoder


def make_decoder(num_classes=4, cond_dim=5) -> Decoder:
    torch.manual_seed(0)
    return Decoder(num_classes, cond_dim, small_config().model.decoder).eval()


def test_precomputed_context_equals_direct_forward():
    decoder = make_decoder()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 4, 9, generator=gen)
    cond = torch.randn(2, 5, 9, generator=gen)
    mask = lengths_mask([9, 6], 9)
    context = decoder.prepare(cond, mask)
    for step in (0, 500, 999):
        t = torch.full((2,), step)
        torch.testing.assert_close(decoder.denoise(x, t, context), decoder(x, t, cond, mask))


def test_cross_attention_uses_the_conditioning_and_the_step():
    decoder = make_decoder()
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 4, 9, generator=gen)
    cond = torch.randn(1, 5, 9, generator=gen)
    mask = torch.ones(1, 9, dtype=torch.bool)
    base = decoder(x, torch.tensor([10]), cond, mask)
    assert base.shape == (1, 4, 9)
    assert not torch.allclose(base, decoder(x, torch.tensor([900]), cond, mask))
    assert not torch.allclose(base, decoder(x, torch.tensor([10]), 2 * cond, mask))


def test_a_video_alone_equals_the_video_in_a_padded_batch():
    decoder = make_decoder()
    gen = torch.Generator().manual_seed(2)
    x, cond = torch.rand(4, 10, generator=gen), torch.randn(5, 10, generator=gen)
    alone = decoder(x[None], torch.tensor([321]), cond[None], torch.ones(1, 10, dtype=torch.bool))
    xb = pad_batch(x, [torch.rand(4, 17, generator=gen)], 17)
    cb = pad_batch(cond, [torch.randn(5, 17, generator=gen)], 17)
    out = decoder(xb, torch.tensor([321, 5]), cb, lengths_mask([10, 17], 17))
    torch.testing.assert_close(out[0, :, :10], alone[0], atol=1e-5, rtol=1e-5)
