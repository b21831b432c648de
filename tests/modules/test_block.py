import pytest
import torch
import torch.nn.functional as F
from torch import nn

from twostream_das.modules import (
    ConvAttentionBlock,
    DilatedConv,
    PointwiseConv,
    frame_mask,
    masked_instance_norm,
    native,
    window_key_mask,
)
from twostream_das.modules.block import dropout_shares


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


def window_tensor_attention(q, k, v, key_mask, kernel_size, dilation):
    """The attention through explicit (B, C, k, T) window tensors (autograd-differentiable)."""
    reach = (kernel_size // 2) * dilation
    frames = q.shape[2]

    def windows(x):
        padded = F.pad(x, (reach, reach))
        return torch.stack([padded[:, :, j * dilation : j * dilation + frames]
                            for j in range(kernel_size)], dim=2)  # fmt: skip

    scores = (q.unsqueeze(2) * windows(k)).sum(1) / q.shape[1] ** 0.5  # (B, k, T)
    scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
    return (scores.softmax(1).unsqueeze(1) * windows(v)).sum(2)


def reference_block(block, x, fmask, key_mask, cond_qk):
    """The block written out with library-free pieces (conv1d, window-tensor attention, the
    instance-norm formula), so autograd differentiates the straightforward path."""
    w = block.width
    local = F.conv1d(x, block.conv.weight, block.conv.bias, padding=block.conv.padding,
                     dilation=block.dilation)  # fmt: skip
    qkv = F.conv1d(x, block.qkv.weight, block.qkv.bias)
    qk = qkv[:, : 2 * w] + (cond_qk if cond_qk is not None else 0)
    context = window_tensor_attention(qk[:, :w], qk[:, w:], qkv[:, 2 * w :], key_mask,
                                      block.kernel_size, block.dilation)  # fmt: skip
    s = local + context
    mean = (s * fmask.weight).sum(2, keepdim=True) / fmask.count
    centred = (s - mean) * fmask.weight
    var = centred.square().sum(2, keepdim=True) / fmask.count
    out = block.ffn(centred / torch.sqrt(var + 1e-5))
    return (x + out) * fmask.weight


@pytest.mark.parametrize(("dilation", "cond_dim", "lengths"),
                         [(1, 0, [13, 13]), (4, 3, [13, 8]), (8, 0, [13, 5]), (32, 3, [13, 13])])
def test_training_block_gradients_equal_the_straightforward_path(dilation, cond_dim, lengths):
    """Fused training path (one projection, autograd Functions) vs autograd through the
    reference, double precision: outputs and the gradients of input, cond share and weights."""
    torch.manual_seed(0)
    block = ConvAttentionBlock(4, 5, dilation, dropout=0.0, cond_dim=cond_dim).double().train()
    gen = torch.Generator().manual_seed(dilation)
    mask = lengths_mask(lengths, 13)
    fmask = frame_mask(mask, torch.float64)
    key_mask = window_key_mask(mask, 5, dilation)
    x0 = torch.randn(2, 4, 13, generator=gen, dtype=torch.float64) * fmask.weight
    c0 = torch.randn(2, 8, 13, generator=gen, dtype=torch.float64) if cond_dim else None
    grad_out = torch.randn(2, 4, 13, generator=gen, dtype=torch.float64)

    def run(fn):
        block.zero_grad()
        x = x0.clone().requires_grad_()
        c = c0.clone().requires_grad_() if c0 is not None else None
        out = fn(block, x, fmask, key_mask, c)
        out.backward(grad_out)
        grads = [x.grad] + ([c.grad] if c is not None else [])
        return [out, *grads] + [p.grad.clone() for p in block.parameters() if p.grad is not None]

    got, want = run(ConvAttentionBlock.forward), run(reference_block)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("lengths", [[9, 9], [9, 4]])
def test_masked_instance_norm_passes_gradcheck(lengths):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    fmask = frame_mask(lengths_mask(lengths, 9), torch.float64)
    assert torch.autograd.gradcheck(lambda a: masked_instance_norm(a, fmask), (x,))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_block_dropout_keeps_1_minus_p_and_rescales(p):
    drop = ConvAttentionBlock(4, 3, 1, dropout=p).dropout.train()
    torch.manual_seed(0)  # draws from the global RNG, like nn.Dropout
    x = torch.ones(4, 50, 1001)  # odd element count: not a multiple of 4
    out = drop(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
    torch.manual_seed(0)
    assert torch.equal(drop(x), out)  # same seed, same mask
    x.requires_grad_()
    torch.manual_seed(0)
    drop(x).sum().backward()  # the gradient is the same mask and scale
    torch.testing.assert_close(x.grad, out.detach())
    assert torch.equal(drop.eval()(x), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_block_dropout_native_and_pytorch_masks_are_the_same_to_the_bit(dtype):
    drop = ConvAttentionBlock(4, 3, 1, dropout=0.1).dropout.train()
    x0 = torch.randn(3, 5, 77, generator=torch.Generator().manual_seed(1), dtype=dtype)
    grad = torch.randn(3, 5, 77, generator=torch.Generator().manual_seed(2), dtype=dtype)
    results = []
    for use_native in (False, True):
        x = x0.clone().requires_grad_()
        with native.native_kernels(use_native):
            torch.manual_seed(5)
            out = drop(x)
            out.backward(grad)
        results.append((out.detach(), x.grad))
    if not native.available():
        pytest.skip("native kernels not built here")
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_dropout_shares_are_splitmix64_in_16_bit_halves():
    # splitmix64 from state 1234567: the reference sequence (Vigna's splitmix64.c)
    draws = dropout_shares(1234567, 20).view(torch.int64)  # 5 draws of 4 shares each
    assert [d % 2**64 for d in draws.tolist()] == [
        6457827717110365317, 3203168211198807973, 9817491932198370423,
        4593380528125082431, 16408922859458223821,
    ]  # fmt: skip
    assert dropout_shares(1234567, 7).tolist() == dropout_shares(1234567, 8)[:7].tolist()


@pytest.mark.parametrize("use_native", [False, True])
def test_block_dropout_with_a_tiny_p_keeps_everything(use_native):
    # round((1 - p) 2^16) - 2^15 = 2^15 is no int16: compared with the int16 shares it used to
    # wrap to -2^15 and drop every element
    drop = ConvAttentionBlock(4, 3, 1, dropout=1e-7).dropout.train()
    with native.native_kernels(use_native):
        out = drop(torch.ones(3, 4, 50))
    assert torch.all(out == 1 / (1 - 1e-7))
