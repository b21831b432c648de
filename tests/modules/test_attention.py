import pytest
import torch

from twostream_das.modules import (
    frame_mask,
    native,
    window_key_mask,
    window_views,
    windowed_attention,
)
from twostream_das.modules.attention import (
    add_window_context,
    add_window_context_transposed,
    add_window_scores,
)


def dense_band_attention(q, k, v, valid, kernel_size, dilation, masked=float("-inf")):
    """Reference: full (T x T) attention restricted to the dilated band and real keys."""
    frames = q.shape[2]
    offset = torch.arange(frames)[None, :] - torch.arange(frames)[:, None]  # key - query
    reach = (kernel_size // 2) * dilation
    band = (offset.abs() <= reach) & (offset % dilation == 0)  # (T, T)
    allowed = band[None] & valid[:, None, :]  # (B, Tq, Tk)
    scores = torch.einsum("bcq,bck->bqk", q, k) / q.shape[1] ** 0.5
    scores = scores.masked_fill(~allowed, masked)
    return torch.einsum("bqk,bck->bcq", scores.softmax(-1), v)


# without autograd (native kernels, or shifted PyTorch ops) / autograd under autocast
@pytest.mark.parametrize("path", ["shifted", "shifted_pytorch", "strided"])
@pytest.mark.parametrize(("kernel_size", "dilation"), [(3, 1), (5, 2), (5, 4), (7, 3), (5, 64)])
def test_windowed_equals_dense_band_attention_with_padding(kernel_size, dilation, path):
    gen = torch.Generator().manual_seed(kernel_size * 100 + dilation)
    batch, channels, frames = 3, 6, 29
    q, k = (torch.randn(batch, channels, frames, generator=gen) for _ in range(2))
    v = torch.randn(batch, 4, frames, generator=gen)
    lengths = torch.tensor([29, 17, 1])
    valid = torch.arange(frames)[None, :] < lengths[:, None]  # (B, T)
    key_mask = window_key_mask(valid, kernel_size, dilation)
    if path.startswith("shifted"):
        with native.native_kernels(path == "shifted"):
            out = windowed_attention(q, k, v, key_mask, kernel_size, dilation)
    else:  # autocast rules out the autograd Function: the strided-view path (mul/sum stay fp32)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = windowed_attention(q.requires_grad_(), k, v, key_mask, kernel_size, dilation)
        assert out.requires_grad
        out = out.detach()
    ref = dense_band_attention(q, k, v, valid, kernel_size, dilation)
    assert out.shape == (batch, 4, frames)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[valid[:, None, :].expand_as(out)],
                               ref[valid[:, None, :].expand_as(ref)], atol=1e-5, rtol=1e-5)


def test_window_views_shift_by_multiples_of_dilation():
    x = torch.arange(1.0, 8.0).view(1, 1, 7)  # 1 .. 7
    views = window_views(x, 3, 2)  # (1, 1, 3, 7)
    assert views.shape == (1, 1, 3, 7)
    assert views[0, 0, 0].tolist() == [0, 0, 1, 2, 3, 4, 5]  # t - 2
    assert views[0, 0, 1].tolist() == [1, 2, 3, 4, 5, 6, 7]  # t
    assert views[0, 0, 2].tolist() == [3, 4, 5, 6, 7, 0, 0]  # t + 2


def test_key_mask_excludes_ends_and_padding():
    valid = torch.tensor([[True, True, True, False]])
    mask = window_key_mask(valid, 3, 1)  # (1, 3, 4)
    assert mask[0].tolist() == [
        [False, True, True, True],  # t - 1
        [True, True, True, False],  # t
        [True, True, False, False],  # t + 1
    ]


def test_frame_mask_forms():
    fm = frame_mask(torch.tensor([[True, True, False], [True, True, True]]))
    assert fm.weight.shape == (2, 1, 3) and fm.count.flatten().tolist() == [2.0, 3.0]
    assert not fm.full
    assert frame_mask(torch.ones(2, 3, dtype=torch.bool)).full
    with pytest.raises(ValueError, match="bool"):
        frame_mask(torch.ones(2, 3))


@pytest.mark.parametrize(("kernel_size", "dilation"), [(3, 1), (5, 4), (5, 16), (5, 64)])
def test_attention_gradients_equal_dense_band_attention(kernel_size, dilation):
    """Under autograd windowed_attention is a hand-written Function (shifted multiply-adds);
    its gradients equal autograd through the dense T x T reference, double precision, with
    padding (the loss sees real query frames only, as in the blocks)."""
    gen = torch.Generator().manual_seed(kernel_size * 7 + dilation)
    batch, channels, frames = 3, 4, 23
    inputs = [torch.randn(batch, c, frames, generator=gen, dtype=torch.float64)
              for c in (channels, channels, 5)]  # fmt: skip
    valid = torch.arange(frames)[None, :] < torch.tensor([23, 14, 1])[:, None]  # (B, T)
    grad_out = torch.randn(batch, 5, frames, generator=gen, dtype=torch.float64)
    grad_out = grad_out * valid[:, None, :]
    key_mask = window_key_mask(valid, kernel_size, dilation)

    def grads(fn):
        q, k, v = (t.clone().requires_grad_() for t in inputs)
        out = fn(q, k, v)
        out.backward(grad_out)
        return out * valid[:, None, :], q.grad, k.grad, v.grad

    got = grads(lambda q, k, v: windowed_attention(q, k, v, key_mask, kernel_size, dilation))
    want = grads(lambda q, k, v: dense_band_attention(q, k, v, valid, kernel_size, dilation,
                                                      float(torch.finfo(torch.float64).min)))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-10)


def test_attention_passes_gradcheck():
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, c, 11, generator=gen, dtype=torch.float64, requires_grad=True)
               for c in (3, 3, 2))  # fmt: skip
    valid = torch.arange(11)[None, :] < torch.tensor([11, 6])[:, None]
    key_mask = window_key_mask(valid, 5, 2)
    assert torch.autograd.gradcheck(
        lambda a, b, c: windowed_attention(a, b, c, key_mask, 5, 2), (q, k, v)
    )


def run(helper, out, x, y, dilation):
    return helper(out.clone(), x, y, dilation)


def test_hand_worked_window_helpers():
    # T = 3, C = 1, k = 3, d = 1: offsets -1, 0, +1; keys outside the sequence add nothing
    a = torch.tensor([[[1.0, 2.0, 3.0]]])
    b = torch.tensor([[[10.0, 20.0, 30.0]]])
    w = torch.tensor([[[1.0] * 3, [2.0] * 3, [3.0] * 3]])  # (1, 3, 3): w_j = j + 1
    scores = run(add_window_scores, torch.zeros(1, 3, 3), a, b, 1)
    assert scores[0].tolist() == [[0, 20, 60], [10, 40, 90], [20, 60, 0]]
    # out[t] = 1 b[t-1] + 2 b[t] + 3 b[t+1]
    assert run(add_window_context, torch.zeros(1, 1, 3), b, w, 1)[0, 0].tolist() == [80, 140, 80]
    # out[s] = 1 b[s+1] + 2 b[s] + 3 b[s-1]
    assert run(add_window_context_transposed, torch.zeros(1, 1, 3), b, w, 1)[0, 0].tolist() == [
        40, 100, 120,
    ]  # fmt: skip


def test_transposed_helper_is_the_adjoint_of_the_context_helper():
    # <context(w, v), g> = <v, transposed(g, w)> for every v, g: the backward of the mix
    gen = torch.Generator().manual_seed(3)
    v, g = torch.randn(2, 4, 50, generator=gen, dtype=torch.float64).unbind(0)
    v, g = v[None], g[None]
    w = torch.rand(1, 5, 50, generator=gen, dtype=torch.float64)
    mixed = run(add_window_context, torch.zeros_like(v), v, w, 7)
    sent = run(add_window_context_transposed, torch.zeros_like(g), g, w, 7)
    torch.testing.assert_close((mixed * g).sum(), (v * sent).sum())
