import pytest
import torch
import torch.nn.functional as F

from twostream_das.kernels import Backend, frame_mask, native, use_backend, window_key_mask
from twostream_das.model.block import ConvAttentionBlock, DilatedConv, PointwiseConv

BACKENDS = [
    Backend.REFERENCE,
    Backend.SHIFTED,
    pytest.param(
        Backend.NATIVE,
        marks=pytest.mark.skipif(not native.available(), reason="native kernels not built here"),
    ),
]


def lengths_mask(lengths, frames):
    return torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]


def test_pointwise_conv_and_the_conv_matrix_equal_conv1d():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 11, generator=gen)
    point = PointwiseConv(4, 6)
    torch.testing.assert_close(point(x), F.conv1d(x, point.weight, point.bias))
    dilated = DilatedConv(4, 5, 3)
    ref = F.conv1d(x, dilated.weight, dilated.bias, padding=6, dilation=3)
    torch.testing.assert_close(dilated(x), ref, atol=1e-5, rtol=1e-5)
    # the (c_in, tap) column order of the matrix the ops take
    assert dilated.matrix[2, 3 * 5 + 4] == dilated.weight[2, 3, 4]


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
    qkv_in = block.project_cond(cond)  # (1, 3F, 9): bias + cond share, bias only for v
    split = (block.qkv.matrix @ x)[:, :width] + qkv_in[:, :width]
    torch.testing.assert_close(split, direct, atol=1e-5, rtol=1e-5)
    value_bias = block.qkv.bias[2 * width :, None].expand(-1, 9)
    torch.testing.assert_close(qkv_in[0, 2 * width :], value_bias)


@pytest.mark.parametrize("backend", BACKENDS)
def test_block_output_of_a_video_does_not_depend_on_padding(backend):
    torch.manual_seed(0)
    block = ConvAttentionBlock(6, 5, 4, dropout=0.5, cond_dim=3).eval()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 6, 10, generator=gen)
    cond = torch.randn(1, 3, 10, generator=gen)

    def run(xs, cs, mask):
        with use_backend(backend):
            return block(xs, frame_mask(mask), window_key_mask(mask, 5, 4), block.project_cond(cs))

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


def reference_block(block, x, fmask, key_mask, qkv_in):
    """The block written out with library-free pieces (conv1d, window-tensor attention, the
    instance-norm formula), so autograd differentiates the straightforward path."""
    w = block.width
    local = F.conv1d(x, block.conv.weight, block.conv.bias, padding=block.conv.padding,
                     dilation=block.dilation)  # fmt: skip
    qkv_in = qkv_in if qkv_in is not None else block.qkv.bias[:, None]
    qkv = F.conv1d(x, block.qkv.weight) + qkv_in
    context = window_tensor_attention(qkv[:, :w], qkv[:, w : 2 * w], qkv[:, 2 * w :], key_mask,
                                      block.kernel_size, block.dilation)  # fmt: skip
    s = local + context
    mean = (s * fmask.weight).sum(2, keepdim=True) / fmask.count
    centred = (s - mean) * fmask.weight
    var = centred.square().sum(2, keepdim=True) / fmask.count
    out = block.ffn(centred / torch.sqrt(var + 1e-5))
    return (x + out) * fmask.weight


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("dilation", "cross", "lengths"),
                         [(1, False, [13, 13]), (4, True, [13, 8]), (8, False, [13, 5]),
                          (32, True, [13, 13])])  # fmt: skip
def test_training_block_gradients_equal_the_straightforward_path(backend, dilation, cross, lengths):
    """The block under each backend vs autograd through the written-out block, double
    precision: outputs and the gradients of input, qkv input term and weights."""
    torch.manual_seed(0)
    block = ConvAttentionBlock(4, 5, dilation, dropout=0.0, cond_dim=3 if cross else 0)
    block = block.double().train()
    gen = torch.Generator().manual_seed(dilation)
    mask = lengths_mask(lengths, 13)
    fmask = frame_mask(mask, torch.float64)
    key_mask = window_key_mask(mask, 5, dilation)
    x0 = torch.randn(2, 4, 13, generator=gen, dtype=torch.float64) * fmask.weight
    c0 = torch.randn(2, 12, 13, generator=gen, dtype=torch.float64) if cross else None
    grad_out = torch.randn(2, 4, 13, generator=gen, dtype=torch.float64)

    def run(fn):
        block.zero_grad()
        x = x0.clone().requires_grad_()
        c = c0.clone().requires_grad_() if c0 is not None else None
        with use_backend(backend):
            out = fn(block, x, fmask, key_mask, c)
        out.backward(grad_out)
        grads = [x.grad] + ([c.grad] if c is not None else [])
        return [out, *grads] + [p.grad.clone() for p in block.parameters() if p.grad is not None]

    got, want = run(ConvAttentionBlock.forward), run(reference_block)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS[1:])
@pytest.mark.parametrize(("dilation", "cross", "lengths"),
                         [(2, True, [13, 8]), (8, False, [13, 3])])  # fmt: skip
def test_diffact_block_trains_alike_under_every_backend(backend, dilation, cross, lengths):
    """A converted DiffAct block (``diffact_outside``) in training, double precision, its q and k
    biases pushing every score to about -30, where DiffAct's handling of the positions
    without a key differs most from exact masking: the output and every gradient under a fast
    backend equal the reference backend's."""
    torch.manual_seed(0)
    block = ConvAttentionBlock(4, 5, dilation, dropout=0.0, cond_dim=3 if cross else 0,
                               diffact_outside=True).double().train()  # fmt: skip
    with torch.no_grad():
        block.qkv.bias[:4], block.qkv.bias[4:8] = 4.0, -4.0
    gen = torch.Generator().manual_seed(dilation)
    mask = lengths_mask(lengths, 13)
    fmask = frame_mask(mask, torch.float64)
    key_mask = window_key_mask(mask, 5, dilation)
    x0 = torch.randn(2, 4, 13, generator=gen, dtype=torch.float64) * fmask.weight
    c0 = torch.randn(2, 3, 13, generator=gen, dtype=torch.float64) if cross else None
    grad_out = torch.randn(2, 4, 13, generator=gen, dtype=torch.float64)

    def run(chosen):
        block.zero_grad()
        x = x0.clone().requires_grad_()
        c = c0.clone().requires_grad_() if c0 is not None else None
        with use_backend(chosen):
            out = block(x, fmask, key_mask, block.project_cond(c) if cross else None)
        out.backward(grad_out)
        grads = [x.grad] + ([c.grad] if c is not None else [])
        return [out, *grads] + [p.grad.clone() for p in block.parameters() if p.grad is not None]

    got, want = run(backend), run(Backend.REFERENCE)
    assert len(got) == len(want) == (12 if cross else 10)  # out, inputs, 8 or 9 weights
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-10)


def test_block_state_dict_keys_are_those_of_earlier_checkpoints():
    # nn.Conv1d-style parameters under the names every checkpoint so far has used
    block = ConvAttentionBlock(4, 3, 2, dropout=0.1, cond_dim=5)
    assert sorted(block.state_dict()) == [
        "cond_qk.weight", "conv.bias", "conv.weight", "ffn.0.bias", "ffn.0.weight",
        "ffn.2.bias", "ffn.2.weight", "qkv.bias", "qkv.weight",
    ]  # fmt: skip
    assert block.conv.weight.shape == (4, 4, 3) and block.qkv.weight.shape == (12, 4, 1)
