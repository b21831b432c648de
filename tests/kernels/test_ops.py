"""Every fast backend against the reference backend, op by op: forward and backward, with
padding, in float32 (default float32 tolerance) and float64 (tight), for both handlings of the
attention at the sequence ends (exact, and DiffAct's: ``diffact_outside``)."""

import pytest
import torch

from twostream_das.kernels import Backend, frame_mask, native, ops, use_backend, window_key_mask

FAST = [
    Backend.SHIFTED,
    pytest.param(
        Backend.NATIVE,
        marks=pytest.mark.skipif(not native.available(), reason="native kernels not built here"),
    ),
]
DTYPES = [torch.float32, torch.float64]


def tolerance(dtype):
    tight = {"atol": 1e-10, "rtol": 1e-10}
    return {"atol": 1e-5, "rtol": 1e-4} if dtype == torch.float32 else tight


def lengths_mask(lengths, frames):
    return torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]


def run(backend, fn, inputs, grad_out, real):
    """fn(*inputs) under ``backend``: its output on real frames and the gradients of every
    input that wants one (the gradient flows from real frames only, as in the blocks)."""
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    with use_backend(backend):
        out = fn(*leaves)
    (out * real).backward(grad_out)
    return [out.detach() * real] + [t.grad for t in leaves if t.requires_grad]


def assert_same(got, want, dtype):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, **tolerance(dtype))


OUTSIDE = [pytest.param(False, id="exact"), pytest.param(True, id="diffact")]


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kernel_size", "dilation"), [(3, 1), (5, 4), (5, 64), (7, 3)])
@pytest.mark.parametrize("outside", OUTSIDE)
def test_windowed_attention_equals_the_reference(backend, dtype, kernel_size, dilation, outside):
    # lengths 29, 17 and 1 (a padded batch); at d = 64 every window reaches past the sequence
    gen = torch.Generator().manual_seed(kernel_size * 10 + dilation)
    q, k = (torch.randn(3, 6, 29, generator=gen, dtype=dtype, requires_grad=True) for _ in "qk")
    v = torch.randn(3, 4, 29, generator=gen, dtype=dtype, requires_grad=True)
    valid = lengths_mask([29, 17, 1], 29)
    key_mask = window_key_mask(valid, kernel_size, dilation)
    real = valid[:, None, :].to(dtype)
    grad_out = torch.randn(3, 4, 29, generator=gen, dtype=dtype)

    def attention(a, b, c):
        return ops.windowed_attention(a, b, c, key_mask, kernel_size, dilation, outside)

    want = run(Backend.REFERENCE, attention, (q, k, v), grad_out, real)
    assert_same(run(backend, attention, (q, k, v), grad_out, real), want, dtype)
    with torch.no_grad(), use_backend(backend):  # the forward without autograd
        torch.testing.assert_close(attention(q, k, v) * real, want[0], **tolerance(dtype))


def conv_attention_inputs(dtype, cross, dilation, seed=0):
    gen = torch.Generator().manual_seed(seed + dilation)
    width, frames, k = 4, 21, 5

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype, requires_grad=True)

    valid = lengths_mask([21, 13], frames)
    h = (randn(2, width, frames) * valid[:, None, :]).detach().requires_grad_()
    qkv_in = randn(2, 3 * width, frames) if cross else randn(3 * width, 1)
    weights = (randn(width, width * k), randn(width), randn(3 * width, width), qkv_in)
    return h, weights, valid, window_key_mask(valid, k, dilation), (k, dilation)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("dilation", "cross"), [(1, False), (4, True), (8, False), (32, True)])
@pytest.mark.parametrize("outside", OUTSIDE)
def test_conv_attention_equals_the_reference(backend, dtype, dilation, cross, outside):
    # lengths 21 and 13, k = 5: at d = 8 and 32 windows reach past the ends of both videos
    h, weights, valid, key_mask, geometry = conv_attention_inputs(dtype, cross, dilation)
    real = valid[:, None, :].to(dtype)
    grad_out = torch.randn(2, 4, 21, generator=torch.Generator().manual_seed(9), dtype=dtype)

    def mix(x, conv_w, conv_b, qkv_w, qkv_in):
        return ops.conv_attention(x, conv_w, conv_b, qkv_w, qkv_in, key_mask, geometry, outside)

    want = run(Backend.REFERENCE, mix, (h, *weights), grad_out, real)
    assert_same(run(backend, mix, (h, *weights), grad_out, real), want, dtype)
    with torch.no_grad(), use_backend(backend):
        torch.testing.assert_close(mix(h, *weights) * real, want[0], **tolerance(dtype))


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("outside", OUTSIDE)
def test_conv_attention_takes_weights_per_row_without_autograd(backend, outside):
    """The stacked streams: row n with its own weights = that row alone with them."""
    first = conv_attention_inputs(torch.float32, True, 2, seed=1)
    second = conv_attention_inputs(torch.float32, True, 2, seed=2)
    h, _, _, key_mask, geometry = first
    rows = [torch.stack([a, b]) for a, b in zip(first[1][:3], second[1][:3], strict=True)]
    qkv_in = first[1][3]
    with torch.no_grad(), use_backend(backend):
        both = ops.conv_attention(h, *rows, qkv_in, key_mask, geometry, outside)
        for n, (_, weights, *_rest) in enumerate((first, second)):
            alone = ops.conv_attention(h, *weights[:3], qkv_in, key_mask, geometry, outside)
            torch.testing.assert_close(both[n], alone[n])


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lengths", [[11, 11], [11, 6]])
def test_instance_norm_equals_the_reference(backend, dtype, lengths):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 11, generator=gen, dtype=dtype, requires_grad=True)
    fmask = frame_mask(lengths_mask(lengths, 11), dtype)
    real = fmask.weight
    grad_out = torch.randn(2, 5, 11, generator=gen, dtype=dtype)

    def norm(a):
        return ops.instance_norm(a, fmask)

    want = run(Backend.REFERENCE, norm, (x,), grad_out, real)
    assert_same(run(backend, norm, (x,), grad_out, real), want, dtype)


@pytest.mark.parametrize("backend", [Backend.REFERENCE, *FAST])
def test_instance_norm_passes_gradcheck(backend):
    x = torch.randn(2, 3, 9, generator=torch.Generator().manual_seed(4), dtype=torch.float64,
                    requires_grad=True)  # fmt: skip
    fmask = frame_mask(lengths_mask([9, 4], 9), torch.float64)
    with use_backend(backend):
        assert torch.autograd.gradcheck(lambda a: ops.instance_norm(a, fmask), (x,))


@pytest.mark.parametrize("backend", [Backend.REFERENCE, *FAST])
@pytest.mark.parametrize("outside", OUTSIDE)
def test_attention_passes_gradcheck(backend, outside):
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, c, 11, generator=gen, dtype=torch.float64, requires_grad=True)
               for c in (3, 3, 2))  # fmt: skip
    key_mask = window_key_mask(lengths_mask([11, 6], 11), 5, 2)
    with use_backend(backend):
        assert torch.autograd.gradcheck(
            lambda a, b, c: ops.windowed_attention(a, b, c, key_mask, 5, 2, outside), (q, k, v)
        )


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", DTYPES)
def test_diffact_outside_keeps_a_share_of_the_softmax_for_missing_keys(backend, dtype):
    # T = 1, k = 3, q = k = 0: one real key (the frame itself, v = 1) and two positions outside
    # the sequence; DiffAct's scores are log(1 + 1e-6) and log(1e-6) twice, so the real key
    # weighs 1 / (1 + 2 * 1e-6 / (1 + 1e-6)) and the output is that weight; exact masking: 1
    q = torch.zeros(1, 1, 1, dtype=dtype)
    v = torch.ones(1, 1, 1, dtype=dtype)
    key_mask = window_key_mask(torch.ones(1, 1, dtype=torch.bool), 3, 1)
    with use_backend(backend):
        exact = ops.windowed_attention(q, q, v, key_mask, 3, 1)
        diffact = ops.windowed_attention(q, q, v, key_mask, 3, 1, True)
    want = 1.0 / (1.0 + 2 * (1e-6 / (1.0 + 1e-6)))  # 0.999998
    assert exact.item() == 1.0
    assert diffact.item() == pytest.approx(want, abs=1e-7)  # 1 - want = 2e-6


@pytest.mark.parametrize("backend", [Backend.REFERENCE, *FAST])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_keeps_1_minus_p_and_rescales(backend, p):
    x = torch.ones(4, 50, 1001)  # odd element count: not a multiple of 4
    with use_backend(backend):
        torch.manual_seed(0)  # draws from the global RNG, like nn.Dropout
        out = ops.dropout(x, p, training=True)
        kept = out != 0
        assert abs(kept.float().mean().item() - (1 - p)) < 0.005
        torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
        torch.manual_seed(0)
        assert torch.equal(ops.dropout(x, p, training=True), out)  # same seed, same mask
        x.requires_grad_()
        torch.manual_seed(0)
        ops.dropout(x, p, training=True).sum().backward()  # the gradient: same mask and scale
        torch.testing.assert_close(x.grad, out)
        assert ops.dropout(x, p, training=False) is x


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_masks_of_the_fast_backends_are_the_same_to_the_bit(dtype):
    if not native.available():
        pytest.skip("native kernels not built here")
    x0 = torch.randn(3, 5, 77, generator=torch.Generator().manual_seed(1), dtype=dtype)
    grad = torch.randn(3, 5, 77, generator=torch.Generator().manual_seed(2), dtype=dtype)
    results = []
    for backend in (Backend.SHIFTED, Backend.NATIVE):
        x = x0.clone().requires_grad_()
        with use_backend(backend):
            torch.manual_seed(5)
            out = ops.dropout(x, 0.1, training=True)
            out.backward(grad)
        results.append((out.detach(), x.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("backend", FAST)
def test_dropout_with_a_tiny_p_keeps_everything(backend):
    # round((1 - p) 2^16) - 2^15 = 2^15 is no int16: compared with the int16 shares it used to
    # wrap to -2^15 and drop every element
    with use_backend(backend):
        out = ops.dropout(torch.ones(3, 4, 50), 1e-7, training=True)
    assert torch.all(out == 1 / (1 - 1e-7))


@pytest.mark.parametrize("backend", FAST)
def test_what_a_fast_backend_lacks_runs_the_reference(backend):
    h, weights, valid, key_mask, geometry = conv_attention_inputs(torch.float64, False, 2)
    with use_backend(backend), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = ops.conv_attention(h.float(), *(w.float() for w in weights), key_mask, geometry)
    assert mixed.requires_grad  # autograd under autocast: the reference ops
