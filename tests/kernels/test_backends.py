import enum
import os
import subprocess
import sys
import threading

import pytest
import torch

from twostream_das.errors import ConfigError
from twostream_das.kernels import (
    Backend,
    backends,
    current_backend,
    native,
    reference,
    registry,
    use_backend,
)
from twostream_das.kernels.backends import backend_from_environment, parse_backend
from twostream_das.kernels.registry import OPS, implementation, registered
from twostream_das.kernels.windows import window_key_mask, window_stack, window_views


def test_the_environment_names_a_backend_and_the_older_variable_is_refused_by_name():
    assert backend_from_environment({}) is None  # the default applies
    assert backend_from_environment({"TWOSTREAM_DAS_BACKEND": "reference"}) is Backend.REFERENCE
    assert backend_from_environment({"TWOSTREAM_DAS_BACKEND": " Native "}) is Backend.NATIVE
    with pytest.raises(ConfigError, match="TWOSTREAM_DAS_BACKEND: unknown backend 'fast'"):
        backend_from_environment({"TWOSTREAM_DAS_BACKEND": "fast"})
    with pytest.raises(ConfigError, match="TWOSTREAM_DAS_NATIVE is no longer read; set "
                                          "TWOSTREAM_DAS_BACKEND=shifted"):
        backend_from_environment({"TWOSTREAM_DAS_NATIVE": "0"})


def test_the_choice_is_the_context_s_own():
    """A thread started inside use_backend keeps the process default; each thread's choice is
    its own (a context variable, not process state)."""
    default = current_backend()
    seen = {}

    def worker(name, backend):
        if backend is None:
            seen[name] = current_backend()
            return
        with use_backend(backend):
            ready.wait(5)  # both threads inside their own use_backend at once
            seen[name] = current_backend()

    ready = threading.Barrier(2)
    with use_backend("reference"):
        inherits = threading.Thread(target=worker, args=("plain", None))
        inherits.start()
        inherits.join()
        threads = [threading.Thread(target=worker, args=(n, b))
                   for n, b in (("a", Backend.SHIFTED), ("b", Backend.REFERENCE))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert current_backend() is Backend.REFERENCE
    assert seen == {"plain": default, "a": Backend.SHIFTED, "b": Backend.REFERENCE}


def test_one_dispatch_per_op_falls_back_along_the_chain():
    """Every backend registers every op; a fast backend's registration declines what it does
    not implement (gradients under mixed dtypes), which then runs in the next backend of the
    chain, down to the reference. DiffAct's attention at the sequence ends runs everywhere."""
    for op in OPS:
        assert set(registered(op)) == set(Backend), op
    x = torch.randn(1, 4, 9)
    mask = window_key_mask(torch.ones(1, 9, dtype=torch.bool), 3, 1)
    exact = (x, x, x, mask, 3, 1, False)
    diffact = (x, x, x, mask, 3, 1, True)
    shifted = registered("windowed_attention")[Backend.SHIFTED].run
    with use_backend("shifted"):
        assert implementation("windowed_attention", *exact) is shifted
        assert implementation("windowed_attention", *diffact) is shifted
    with use_backend("reference"):
        assert implementation("windowed_attention", *exact) is reference.windowed_attention
    mixed = (x.requires_grad_(), x.double(), x, mask, 3, 1, False)
    with use_backend("shifted"):
        assert implementation("windowed_attention", *mixed) is reference.windowed_attention


def test_window_stacks_are_the_views_with_and_without_autograd():
    x = torch.arange(14.0).reshape(1, 2, 7)
    view = window_views(x, 3, 2)  # the strided view, for code without autograd
    torch.testing.assert_close(window_stack(x, 3, 2), view, rtol=0, atol=0)
    torch.testing.assert_close(window_stack(x.requires_grad_(), 3, 2), view, rtol=0, atol=0)


def test_use_backend_nests_and_restores():
    default = current_backend()
    assert default is (Backend.NATIVE if native.available() else Backend.SHIFTED)
    with use_backend("reference") as chosen:
        assert chosen is Backend.REFERENCE and current_backend() is Backend.REFERENCE
        with use_backend(Backend.SHIFTED):
            assert current_backend() is Backend.SHIFTED
        assert current_backend() is Backend.REFERENCE
    assert current_backend() is default
    with pytest.raises(ValueError, match="expected one of reference, shifted, native"):
        parse_backend("cuda")


def test_a_process_reads_the_environment_variable():
    code = "from twostream_das.kernels import current_backend; print(current_backend().value)"
    env = {**os.environ, "TWOSTREAM_DAS_BACKEND": "reference"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    assert done.stdout.strip() == "reference"


class _Extra(str, enum.Enum):
    """A backend member the recipe would add to ``Backend`` (an enum cannot grow at run time,
    so the test's member lives in an enum of its own)."""

    EINSUM = "einsum"


def _einsum_attention(q, k, v, key_mask, kernel_size, dilation, outside):
    """Windowed attention as two einsums over the reference's window stacks."""
    keys = window_stack(k, kernel_size, dilation)  # (B, C, k, T)
    values = window_stack(v, kernel_size, dilation)  # (B, Cv, k, T)
    scores = torch.einsum("bct,bckt->bkt", q, keys) * q.shape[1] ** -0.5
    scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
    return torch.einsum("bkt,bckt->bct", torch.softmax(scores, dim=1), values)


def _einsum_conv_attention(h, conv_w, conv_b, qkv_w, qkv_in, key_mask, geometry, outside):
    """The dilated conv as one matmul over the taps, plus :func:`_einsum_attention`."""
    kernel_size, dilation = geometry
    taps = window_stack(h, kernel_size, dilation).flatten(1, 2)  # (B, F * k, T), (c_in, tap)
    local = reference.linear(taps, conv_w, conv_b)  # (B, F, T)
    q, k, v = (reference.linear(h, qkv_w, None) + qkv_in).chunk(3, dim=1)
    return local + _einsum_attention(q, k, v, key_mask, kernel_size, dilation, outside)


def test_a_new_backend_is_a_module_of_registered_ops(monkeypatch):
    """docs/ARCHITECTURE.md's recipe: a backend member with its fallback, its ops registered
    with what they accept (here: not DiffAct's attention at the sequence ends); the model then
    runs them where they accept, the next backend of the chain elsewhere, and gives the
    reference's outputs and gradients."""
    monkeypatch.setattr(registry, "_TABLE", dict(registry._TABLE))  # forgotten after the test
    monkeypatch.setitem(registry.FALLBACK, _Extra.EINSUM, Backend.REFERENCE)  # step 1
    calls = []

    def counted(run):
        return lambda *args: calls.append(run.__name__) or run(*args)

    exact = lambda *args: not args[-1]  # noqa: E731  # declines diffact_outside
    registry.register("windowed_attention", _Extra.EINSUM, counted(_einsum_attention), exact)
    registry.register("conv_attention", _Extra.EINSUM, counted(_einsum_conv_attention), exact)

    model = _small_model()
    features = {s: torch.randn(2, d, 11, generator=torch.Generator().manual_seed(i))
                for i, (s, d) in enumerate({"rgb": 7, "flow": 5}.items())}  # fmt: skip
    mask = torch.arange(11)[None, :] < torch.tensor([[11], [8]])

    def run(backend):
        model.zero_grad()
        token = backends._chosen.set(backend)  # what use_backend sets, for the test's member
        try:
            cond = model.streams["rgb"].encoder(features["rgb"], mask).cond
            cond.square().sum().backward()
        finally:
            backends._chosen.reset(token)
        grads = [p.grad.clone() for p in model.streams["rgb"].encoder.blocks.parameters()]
        return cond.detach(), grads

    want, want_grads = run(Backend.REFERENCE)
    assert not calls
    got, got_grads = run(_Extra.EINSUM)
    assert calls.count("_einsum_conv_attention") == 3  # every encoder block ran the new op
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    calls.clear()
    x = torch.randn(1, 4, 9)
    key_mask = window_key_mask(torch.ones(1, 9, dtype=torch.bool), 3, 1)
    token = backends._chosen.set(_Extra.EINSUM)
    try:
        diffact = implementation("windowed_attention", x, x, x, key_mask, 3, 1, True)
    finally:
        backends._chosen.reset(token)
    assert diffact is reference.windowed_attention  # declined: the chain's next backend


def _small_model():
    from _model_helpers import small_config
    from twostream_das.model.multi_stream import MultiStreamModel

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return MultiStreamModel.from_config(small_config(), {"rgb": 7, "flow": 5}, 4).eval()
