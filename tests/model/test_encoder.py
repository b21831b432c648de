import pytest
import torch
import torch.nn.functional as F

from _model_helpers import lengths_mask, pad_batch, small_config
from twostream_das.config import EncoderConfig
from twostream_das.kernels import frame_mask, window_key_mask
from twostream_das.model.encoder import Encoder


def make_encoder(**changes) -> Encoder:
    torch.manual_seed(0)
    cfg = small_config().model.encoder
    return Encoder(7, 4, EncoderConfig(**{**cfg.__dict__, **changes}))


def test_shapes_and_conditioning_is_the_chosen_blocks():
    """The encoder's network (run_blocks over the blocks' weights) is its blocks' own forward,
    one after the other; the conditioning is blocks 1 and 2's outputs."""
    encoder = make_encoder().eval()
    x = torch.randn(2, 7, 13)
    mask = torch.ones(2, 13, dtype=torch.bool)
    out = encoder(x, mask)
    fmask = frame_mask(mask, x.dtype)
    h, outputs = encoder.proj_in(x), []
    for block in encoder.blocks:
        h = block(h, fmask, window_key_mask(fmask.valid, block.kernel_size, block.dilation))
        outputs.append(h)
    torch.testing.assert_close(out.logits, encoder.head(h), rtol=0, atol=0)
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
    x = torch.randn(2, 7, 40, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(3)  # dropout draws from the global RNG (training only)
    h = encoder._project_input(x)  # masks on the weight and the output
    torch.manual_seed(3)  # the same draws, applied to the features as nn.Dropout1d does
    dropped = F.dropout1d(x, 0.5, training=True)  # whole channels, x 2
    dropped = F.dropout1d(dropped.transpose(1, 2), 0.5, training=True).transpose(1, 2)  # frames
    zero_channels = (dropped == 0).all(dim=2)  # (B, D)
    zero_frames = (dropped == 0).all(dim=1)  # (B, T)
    assert zero_channels.any() and zero_frames.any() and not zero_frames.all()
    torch.testing.assert_close(h, encoder.proj_in(dropped), atol=0, rtol=0)  # factors 0 and 2
    bias = encoder.proj_in.bias[:, None].expand(-1, 40)
    assert torch.equal(h[0][:, zero_frames[0]], bias[:, zero_frames[0]])  # a dropped frame: b
    encoder.eval()
    torch.testing.assert_close(encoder._project_input(x), encoder.proj_in(x))  # no dropout


def test_bad_conditioning_blocks_and_feature_dims_are_errors():
    with pytest.raises(ValueError, match="cond_blocks"):
        make_encoder(cond_blocks=[3])
    with pytest.raises(ValueError, match="7-d"):
        make_encoder()(torch.randn(1, 5, 4), torch.ones(1, 4, dtype=torch.bool))
