"""The reference backend against definitions written from scratch: dense T x T attention
restricted to the dilated band, ``nn.InstanceNorm1d``, ``nn.Conv1d``."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from twostream_das.kernels import frame_mask, reference, window_key_mask


def lengths_mask(lengths, frames):
    return torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]


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


@pytest.mark.parametrize(("kernel_size", "dilation"), [(3, 1), (5, 2), (5, 4), (7, 3), (5, 64)])
def test_windowed_attention_equals_dense_band_attention_with_padding(kernel_size, dilation):
    gen = torch.Generator().manual_seed(kernel_size * 100 + dilation)
    batch, channels, frames = 3, 6, 29
    q, k = (torch.randn(batch, channels, frames, generator=gen) for _ in range(2))
    v = torch.randn(batch, 4, frames, generator=gen)
    valid = lengths_mask([29, 17, 1], frames)  # (B, T)
    key_mask = window_key_mask(valid, kernel_size, dilation)
    out = reference.windowed_attention(q, k, v, key_mask, kernel_size, dilation)
    ref = dense_band_attention(q, k, v, valid, kernel_size, dilation)
    assert out.shape == (batch, 4, frames) and torch.isfinite(out).all()
    real = valid[:, None, :].expand_as(out)
    torch.testing.assert_close(out[real], ref[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("kernel_size", "dilation"), [(3, 1), (5, 4), (5, 64)])
def test_windowed_attention_gradients_equal_dense_band_attention(kernel_size, dilation):
    gen = torch.Generator().manual_seed(kernel_size * 7 + dilation)
    inputs = [torch.randn(3, c, 23, generator=gen, dtype=torch.float64) for c in (4, 4, 5)]
    valid = lengths_mask([23, 14, 1], 23)
    grad_out = torch.randn(3, 5, 23, generator=gen, dtype=torch.float64) * valid[:, None, :]
    key_mask = window_key_mask(valid, kernel_size, dilation)
    lowest = float(torch.finfo(torch.float64).min)

    def grads(fn):
        q, k, v = (t.clone().requires_grad_() for t in inputs)
        out = fn(q, k, v)
        out.backward(grad_out)
        return out * valid[:, None, :], q.grad, k.grad, v.grad

    got = grads(lambda q, k, v: reference.windowed_attention(q, k, v, key_mask, kernel_size,
                                                             dilation))  # fmt: skip
    want = grads(lambda q, k, v: dense_band_attention(q, k, v, valid, kernel_size, dilation,
                                                      lowest))  # fmt: skip
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-10)


def diffact_window_attention(q, k, v, valid, kernel_size, dilation):
    """Reference: DiffAct's attention written frame by frame. Every window position gets a
    score; a position without a key (outside the sequence, or a padded frame) has key and
    value 0 and every score gets log(exists + 1e-6); the softmax runs over the whole window;
    its weights are then multiplied by the 0/1 mask."""
    batch, channels, frames = q.shape
    out = torch.zeros(batch, v.shape[1], frames, dtype=q.dtype)
    for b in range(batch):
        for t in range(frames):
            scores, values, exists = [], [], []
            for j in range(-(kernel_size // 2), kernel_size // 2 + 1):
                s = t + j * dilation
                there = 0 <= s < frames and bool(valid[b, s])
                key = k[b, :, s] if there else torch.zeros(channels, dtype=q.dtype)
                score = (q[b, :, t] * key).sum() / channels**0.5 * float(there)
                scores.append(score + torch.log(torch.tensor(float(there), dtype=q.dtype) + 1e-6))
                values.append(v[b, :, s] if there else torch.zeros(v.shape[1], dtype=q.dtype))
                exists.append(float(there))
            weights = torch.softmax(torch.stack(scores), 0) * torch.tensor(exists, dtype=q.dtype)
            out[b, :, t] = (weights[None, :] * torch.stack(values, 1)).sum(1)
    return out


@pytest.mark.parametrize(("kernel_size", "dilation"), [(3, 1), (5, 2), (7, 3), (5, 16)])
def test_diffact_outside_equals_diffacts_attention_written_frame_by_frame(kernel_size, dilation):
    gen = torch.Generator().manual_seed(kernel_size + dilation)
    q, k = (torch.randn(2, 4, 19, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 3, 19, generator=gen, dtype=torch.float64)
    valid = lengths_mask([19, 11], 19)
    key_mask = window_key_mask(valid, kernel_size, dilation)
    out = reference.windowed_attention(q, k, v, key_mask, kernel_size, dilation, True)
    want = diffact_window_attention(q, k, v, valid, kernel_size, dilation)
    real = valid[:, None, :].expand_as(out)
    torch.testing.assert_close(out[real], want[real], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(
    ("kernel_size", "dilation", "rows"),
    [(5, 1, 8), (5, 32, 8), (5, 64, 4), (5, 512, 4), (7, 1, 8), (7, 512, 6), (1, 4, 8)],
)
def test_a_block_holds_at_least_the_window_and_spans_few_frames(kernel_size, dilation, rows):
    assert reference.rows_per_block(kernel_size, dilation) == rows


def test_diffact_outside_keeps_a_share_of_the_softmax_for_missing_keys():
    # T = 1, k = 3: one real key (itself) and two positions outside; DiffAct's masked scores
    # are 0 + log(1e-6), so the real key's weight is 1 / (1 + 2e-6) and the output is below v
    q = k = torch.zeros(1, 1, 1)
    v = torch.ones(1, 1, 1)
    key_mask = window_key_mask(torch.ones(1, 1, dtype=torch.bool), 3, 1)
    exact = reference.windowed_attention(q, k, v, key_mask, 3, 1)
    diffact = reference.windowed_attention(q, k, v, key_mask, 3, 1, diffact_outside=True)
    assert exact.item() == pytest.approx(1.0)
    assert diffact.item() == pytest.approx(1.0 / (1.0 + 2 * (1e-6 / (1.0 + 1e-6))), rel=1e-6)


def test_instance_norm_equals_instance_norm_on_real_frames():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 13, generator=gen)
    full = reference.instance_norm(x, frame_mask(torch.ones(2, 13, dtype=torch.bool)))
    torch.testing.assert_close(full, nn.InstanceNorm1d(5)(x), atol=1e-5, rtol=1e-5)
    padded = torch.cat([x[:1], torch.randn(1, 5, 13, generator=gen)])
    padded[1, :, 9:] = 123.0  # garbage on padding must not matter
    out = reference.instance_norm(padded, frame_mask(lengths_mask([13, 9], 13)))
    torch.testing.assert_close(out[0], full[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1, :, :9], nn.InstanceNorm1d(5)(padded[1:, :, :9])[0],
                               atol=1e-5, rtol=1e-5)  # fmt: skip
    assert torch.all(out[1, :, 9:] == 0)


def test_conv_attention_is_the_conv_plus_the_attention_of_the_projections():
    gen = torch.Generator().manual_seed(6)
    width, frames, k, d = 4, 17, 5, 3
    conv = nn.Conv1d(width, width, k, padding=(k // 2) * d, dilation=d)
    qkv = nn.Conv1d(width, 3 * width, 1)
    h = torch.randn(2, width, frames, generator=gen)
    valid = lengths_mask([17, 11], frames)
    key_mask = window_key_mask(valid, k, d)
    out = reference.conv_attention(
        h, conv.weight.reshape(width, -1), conv.bias, qkv.weight[:, :, 0], qkv.bias[:, None],
        key_mask, (k, d),
    )  # fmt: skip
    q, keys, v = qkv(h).split(width, dim=1)
    want = conv(h) + dense_band_attention(q, keys, v, valid, k, d)
    real = valid[:, None, :].expand_as(out)
    torch.testing.assert_close(out[real], want[real], atol=1e-5, rtol=1e-5)
    assert F.conv1d(h, conv.weight, conv.bias, padding=6, dilation=3).shape == out.shape
