import warnings

import pytest
import torch

from twostream_das.kernels import Backend, current_backend, native, ops, use_backend
from twostream_das.kernels.fast import attend, attend_backward
from twostream_das.kernels.windows import window_key_mask


def kernels(on):
    """The native backend (its kernels) or the shifted one (the same work as PyTorch ops)."""
    return use_backend(Backend.NATIVE if on else Backend.SHIFTED)

needs_native = pytest.mark.skipif(
    not native.available(), reason="native kernels not built here (no C++ compiler?)"
)
OUTSIDE = [pytest.param(False, id="exact"), pytest.param(True, id="diffact")]


@pytest.mark.parametrize("use_native", [False, pytest.param(True, marks=needs_native)])
def test_hand_worked_uniform_attention(use_native):
    # q = 0: every real key weighs the same, so each frame gets the mean of the values in its
    # window that lie inside the sequence (T = 3, k = 3, d = 1), added onto out
    v = torch.tensor([[[10.0, 20.0, 30.0]]])
    q = torch.zeros(1, 1, 3)
    key_mask = window_key_mask(torch.ones(1, 3, dtype=torch.bool), 3, 1)
    with kernels(use_native):
        weights, out = attend(q, q, v, key_mask, (3, 1, 1.0), torch.ones(1, 1, 3), use_native)
    assert out[0, 0].tolist() == pytest.approx([16.0, 21.0, 26.0])  # 1 + (10+20)/2, ...
    assert weights[0, :, 0].tolist() == pytest.approx([0.0, 0.5, 0.5])  # no key before t = 0


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("taps", "dilation"), [(3, 1), (5, 4), (7, 64), (15, 1)])
@pytest.mark.parametrize("frames", [1, 33, 600])
@pytest.mark.parametrize("outside", OUTSIDE)
def test_fused_attention_equals_pytorch_ops(taps, dilation, frames, dtype, outside):
    # scores, masked softmax and weighted sum in one kernel, onto an existing out; videos of
    # several lengths, one with no real frame at all (every key masked: uniform weights, or
    # none with DiffAct's handling of the positions without a key)
    gen = torch.Generator().manual_seed(taps + dilation + frames)
    batch, channels = 4, 6
    packed = torch.randn(batch, 3 * channels, frames, generator=gen, dtype=dtype) * 3
    q, k, v = packed.split(channels, dim=1)
    lengths = torch.tensor([frames, max(frames // 2, 1), 1, 0])
    valid = torch.arange(frames)[None, :] < lengths[:, None]  # (B, T)
    key_mask = window_key_mask(valid, taps, dilation)
    local = torch.randn(batch, channels, frames, generator=gen, dtype=dtype)
    results = {}
    for use_native in (False, True):
        with kernels(use_native):
            results[use_native] = attend(q, k, v, key_mask, (taps, dilation, 0.4), local.clone(),
                                         kernels=use_native, diffact_outside=outside)
    # float64 to the default (tight) tolerance; float32 to its rounding of scores near 50
    tol = {"atol": 2e-5, "rtol": 1e-4} if dtype == torch.float32 else {}
    torch.testing.assert_close(results[True][0], results[False][0], **tol)  # weights
    torch.testing.assert_close(results[True][1], results[False][1], **tol)  # local + attention
    no_key = 0.0 if outside else 1.0 / taps
    assert torch.allclose(results[True][0][3], torch.full((taps, frames), no_key, dtype=dtype))


@needs_native
def test_applies_only_where_the_kernels_are_exact():
    x = torch.zeros(1, 2, 8)
    assert native.applies(5, x, x)
    assert not native.applies(17, x, x)  # wider than the instantiated windows
    assert not native.applies(4, x, x)  # even window
    assert not native.applies(5, x.bfloat16(), x.bfloat16())  # bf16: the PyTorch path
    assert not native.applies(5, x, x.double())  # mixed dtypes
    assert not native.applies(5, x.transpose(1, 2).contiguous().transpose(1, 2), x)  # strided T
    assert not native.applies(5, x.clone().requires_grad_(), x)  # no derivative
    with torch.no_grad():
        assert native.applies(5, x.clone().requires_grad_(), x)


@needs_native
def test_kernel_names_the_bad_operand():
    x, mask = torch.zeros(1, 2, 8), torch.ones(1, 3, 8, dtype=torch.bool)
    with pytest.raises(RuntimeError, match=r"v must be \(1, \*, 8\)"):
        native.window_attention_(x, x, x, torch.zeros(1, 2, 9), mask, 1, 1.0)
    with pytest.raises(RuntimeError, match="window size must be odd"):
        native.window_attention_(x, x, x, x, torch.ones(1, 4, 8, dtype=torch.bool), 1, 1.0)
    with pytest.raises(RuntimeError, match="z must have 3 x 2 rows"):
        native.window_taps_(x, torch.zeros(1, 5, 8), 3, 1)


@needs_native
def test_only_the_native_backend_uses_the_kernels(monkeypatch):
    calls = []
    real = native.window_attention_
    monkeypatch.setattr(native, "window_attention_", lambda *a: calls.append(1) or real(*a))
    q = torch.randn(1, 2, 8)
    mask = window_key_mask(torch.ones(1, 8, dtype=torch.bool), 3, 1)
    for backend, expected in ((Backend.NATIVE, 1), (Backend.SHIFTED, 0), (Backend.REFERENCE, 0)):
        calls.clear()
        with use_backend(backend):
            ops.windowed_attention(q, q, q, mask, 3, 1)
        assert len(calls) == expected, backend


@needs_native
@pytest.mark.parametrize(("taps", "dilation", "frames"), [(3, 1, 40), (5, 64, 600), (5, 512, 30)])
def test_conv_taps_kernel_is_the_shifted_sum_of_tap_projections(taps, dilation, frames):
    gen = torch.Generator().manual_seed(taps + dilation)
    z = torch.randn(2, taps * 4, frames, generator=gen)  # tap j's projection: rows 4j .. 4j+3
    out = torch.randn(2, 4, frames, generator=gen)
    expected = out.clone()
    for j in range(taps):
        o = (j - taps // 2) * dilation
        lo, hi = max(0, -o), min(frames, frames - o)
        if hi > lo:
            expected[:, :, lo:hi] += z[:, 4 * j : 4 * j + 4, lo + o : hi + o]
    native.window_taps_(out, z, taps, dilation)
    torch.testing.assert_close(out, expected)


def test_a_failed_build_warns_once_and_falls_back(monkeypatch):
    from torch.utils import cpp_extension

    def no_compiler(*args, **kwargs):
        raise RuntimeError("c++: command not found")

    monkeypatch.setattr(cpp_extension, "load", no_compiler)
    monkeypatch.setitem(native._state, "loaded", None)  # as in a fresh process
    with kernels(True):
        with pytest.warns(RuntimeWarning, match="c\\+\\+: command not found"):
            assert not native.available()
        assert current_backend() is Backend.SHIFTED  # native asked for, shifted runs
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no second build, no second warning
            assert not native.available()
        mask = window_key_mask(torch.ones(1, 3, dtype=torch.bool), 3, 1)
        _, out = attend(torch.zeros(1, 1, 3), torch.zeros(1, 1, 3), torch.ones(1, 1, 3), mask,
                        (3, 1, 1.0), kernels=current_backend() is Backend.NATIVE)  # fmt: skip
        assert out[0, 0].tolist() == pytest.approx([1.0, 1.0, 1.0])  # by the PyTorch ops


@needs_native
@pytest.mark.parametrize(
    ("taps", "dilation", "frames"), [(1, 1, 7), (3, 1, 40), (5, 16, 600), (7, 128, 90), (15, 2, 1)]
)
@pytest.mark.parametrize("outside", OUTSIDE)
def test_fused_attention_backward_equals_pytorch_ops(taps, dilation, frames, outside):
    # one backward for both handlings of the positions without a key: the weights differ
    gen = torch.Generator().manual_seed(taps * dilation)
    q, k, v, grad_out = torch.randn(4, 3, 5, frames, generator=gen, dtype=torch.float64).unbind(0)
    valid = torch.arange(frames)[None, :] < torch.tensor([frames, frames // 3, 1])[:, None]
    key_mask = window_key_mask(valid, taps, dilation)
    weights, _ = attend(q, k, v, key_mask, (taps, dilation, 0.7), diffact_outside=outside)
    saved = (q, k, v, weights, key_mask)
    results = []
    for use_native in (False, True):
        grads = tuple(torch.zeros_like(t) for t in (q, k, v))
        with kernels(use_native):
            attend_backward(grad_out, saved, (taps, dilation, 0.7), grads, kernels=use_native)
        results.append(grads)
    for got, want in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, want)


def test_calling_a_kernel_that_did_not_build_names_the_cause(monkeypatch):
    # the native module only builds and loads; which backend runs is the ops' choice
    monkeypatch.setitem(native._state, "loaded", False)  # as where the build failed
    with pytest.raises(RuntimeError, match="native window kernels are not built"):
        native.window_taps_(torch.zeros(1, 2, 4), torch.zeros(1, 6, 4), 3, 1)


def test_a_first_build_is_announced_before_the_silent_compile(monkeypatch, caplog):
    monkeypatch.setattr(native, "_cached", lambda name: False)  # as on a fresh machine
    with caplog.at_level("INFO", logger="twostream_das.kernels.native"):
        built = native._build()  # loads the real build from torch's cache (or compiles it)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "building native CPU kernels (once, ~30 s; cached afterwards)..."
    if built:
        assert messages[1].startswith("native CPU kernels built in")
    assert not native._cached("twostream_das_no_such_extension")


def test_a_lock_left_by_a_killed_build_is_removed_and_a_fresh_one_kept(tmp_path, monkeypatch,
                                                                       caplog):
    import logging
    import os
    import time

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # torch's own cache location
    folder = native._build_directory("probe_ext")
    assert folder is not None and tmp_path in folder.parents
    folder.mkdir(parents=True, exist_ok=True)  # torch may have made it
    lock = folder / "lock"
    assert native.clear_stale_lock("probe_ext") is False  # no lock: nothing to do
    lock.write_text("")
    with caplog.at_level(logging.INFO, logger="twostream_das"):
        assert native.clear_stale_lock("probe_ext", stale_after_s=600) is False
    assert lock.exists() and "waiting for another process's build" in caplog.text
    old = time.time() - 601
    os.utime(lock, (old, old))  # a build killed ten minutes ago
    with pytest.warns(RuntimeWarning, match=r"removing .*lock, left 60\d s ago"):
        assert native.clear_stale_lock("probe_ext", stale_after_s=600) is True
    assert not lock.exists()
