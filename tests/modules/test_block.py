import torch
import torch.nn.functional as F
from torch import nn

from twostream_das.modules import (
    ConvAttentionBlock,
    DilatedConv,
    PointwiseConv,
    frame_mask,
    masked_instance_norm,
    window_key_mask,
)


def lengths_mask(lengths, frames):
    return torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]


def test_masked_instance_norm_equals_instance_norm_on_real_frames():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 13, generator=gen)
    full = masked_instance_norm(x, frame_mask(torch.ones(2, 13, dtype=torch.bool)))
    torch.testing.assert_close(full, nn.InstanceNorm1d(5)(x), atol=1e-5, rtol=1e-5)
    padded = torch.cat([x[:1], torch.randn(1, 5, 13, generator=gen)])
    padded[1, :, 9:] = 123.0  # garbage on padding must not matter
    out = masked_instance_norm(padded, frame_mask(lengths_mask([13, 9], 13)))
    torch.testing.assert_close(out[0], full[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1, :, :9], nn.InstanceNorm1d(5)(padded[1:, :, :9])[0],
                               atol=1e-5, rtol=1e-5)
    assert torch.all(out[1, :, 9:] == 0)


def test_pointwise_and_dilated_conv_equal_conv1d():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 11, generator=gen)
    point = PointwiseConv(4, 6)
    torch.testing.assert_close(point(x), F.conv1d(x, point.weight, point.bias))
    dilated = DilatedConv(4, 5, 3)
    ref = F.conv1d(x, dilated.weight, dilated.bias, padding=6, dilation=3)
    torch.testing.assert_close(dilated(x), ref, atol=1e-5, rtol=1e-5)


def test_cross_block_projection_is_the_projection_of_the_concatenation():
    torch.manual_seed(0)
    width, cond_dim = 4, 3
    block = ConvAttentionBlock(width, 3, 2, dropout=0.0, cond_dim=cond_dim).eval()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, width, 9, generator=gen)
    cond = torch.randn(1, cond_dim, 9, generator=gen)
    # DiffAct's form: q = W_q [x ; cond] + b_q with one (F, F + Dc) matrix
    w_q = torch.cat([block.qkv.weight[:width, :, 0], block.cond_qk.weight[:width, :, 0]], dim=1)
    direct = F.conv1d(torch.cat([x, cond], 1), w_q[:, :, None], block.qkv.bias[:width])
    split = block.qkv(x)[:, :width] + block.project_cond(cond)[:, :width]
    torch.testing.assert_close(split, direct, atol=1e-5, rtol=1e-5)


def test_block_output_of_a_video_does_not_depend_on_padding():
    torch.manual_seed(0)
    block = ConvAttentionBlock(6, 5, 4, dropout=0.5, cond_dim=3).eval()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 6, 10, generator=gen)
    cond = torch.randn(1, 3, 10, generator=gen)

    def run(xs, cs, mask):
        fm = frame_mask(mask)
        return block(xs, fm, window_key_mask(mask, 5, 4), block.project_cond(cs))

    alone = run(x, cond, torch.ones(1, 10, dtype=torch.bool))
    xb = torch.zeros(2, 6, 16)
    xb[0, :, :10], xb[1] = x[0], torch.randn(6, 16, generator=gen)
    cb = torch.randn(2, 3, 16, generator=gen)
    cb[0, :, :10] = cond[0]
    out = run(xb, cb, lengths_mask([10, 16], 16))
    torch.testing.assert_close(out[0, :, :10], alone[0], atol=1e-5, rtol=1e-5)
    assert torch.all(out[0, :, 10:] == 0)
