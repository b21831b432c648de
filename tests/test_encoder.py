import pytest
import torch

from _model_helpers import lengths_mask, pad_batch, small_config
from twostream_das.config import EncoderConfig
from twostream_das.encoder import Encoder


def make_encoder(**changes) -> Encoder:
    torch.manual_seed(0)
    cfg = small_config().model.encoder
    return Encoder(7, 4, EncoderConfig(**{**cfg.__dict__, **changes}))


def test_shapes_and_conditioning_is_the_chosen_blocks():
    encoder = make_encoder().eval()
    outputs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outputs.append(o)) for b in encoder.blocks]
    x = torch.randn(2, 7, 13)
    out = encoder(x, torch.ones(2, 13, dtype=torch.bool))
    for hook in hooks:
        hook.remove()
    assert out.logits.shape == (2, 4, 13)
    assert encoder.cond_dim == 16 and out.cond.shape == (2, 16, 13)  # blocks 1 and 2, width 8
    torch.testing.assert_close(out.cond, torch.cat([outputs[1], outputs[2]], dim=1))


def test_a_video_alone_equals_the_video_in_a_padded_batch():
    encoder = make_encoder().eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 11, generator=gen)
    alone = encoder(x[None], torch.ones(1, 11, dtype=torch.bool))
    batch = pad_batch(x, [torch.randn(7, 19, generator=gen), torch.randn(7, 3, generator=gen)], 19)
    batch[2, :, 3:] = 5.0  # garbage on padding
    out = encoder(batch, lengths_mask([11, 19, 3], 19))
    torch.testing.assert_close(out.logits[0, :, :11], alone.logits[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.cond[0, :, :11], alone.cond[0], atol=1e-5, rtol=1e-5)
    assert torch.all(out.cond[0, :, 11:] == 0)


def test_input_dropout_removes_whole_channels_and_frames_in_training():
    encoder = make_encoder(channel_dropout=0.5, frame_dropout=0.5).train()
    seen = []
    encoder.proj_in.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    torch.manual_seed(3)  # dropout draws from the global RNG (training only)
    encoder(torch.ones(1, 7, 40), torch.ones(1, 40, dtype=torch.bool))
    x = seen[0][0]  # (D, T) after both dropouts
    zero_frames = (x == 0).all(dim=0)
    zero_channels = (x == 0).all(dim=1)
    assert zero_frames.any() and zero_channels.any()
    kept = x[~zero_channels][:, ~zero_frames]
    torch.testing.assert_close(kept, torch.full_like(kept, 4.0))  # 1 / (0.5 * 0.5)


def test_bad_conditioning_blocks_and_feature_dims_are_errors():
    with pytest.raises(ValueError, match="cond_blocks"):
        make_encoder(cond_blocks=[3])
    with pytest.raises(ValueError, match="7-d"):
        make_encoder()(torch.randn(1, 5, 4), torch.ones(1, 4, dtype=torch.bool))
