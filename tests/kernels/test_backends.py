import os
import subprocess
import sys
import threading

import pytest
import torch

from twostream_das.errors import ConfigError
from twostream_das.kernels import Backend, current_backend, native, reference, use_backend
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
    not implement (DiffAct's attention at the sequence ends, gradients under mixed dtypes),
    which then runs in the next backend of the chain, down to the reference."""
    for op in OPS:
        assert set(registered(op)) == set(Backend), op
    x = torch.randn(1, 4, 9)
    mask = window_key_mask(torch.ones(1, 9, dtype=torch.bool), 3, 1)
    exact = (x, x, x, mask, 3, 1, False)
    diffact = (x, x, x, mask, 3, 1, True)
    with use_backend("shifted"):
        assert implementation("windowed_attention", *exact) is not reference.windowed_attention
        assert implementation("windowed_attention", *diffact) is reference.windowed_attention
    with use_backend("reference"):
        assert implementation("windowed_attention", *exact) is reference.windowed_attention
    mixed = (x.requires_grad_(), x.double(), x, mask, 3, 1, False)
    with use_backend("shifted"):
        assert implementation("windowed_attention", *mixed) is reference.windowed_attention


def test_the_reference_windows_are_the_same_with_and_without_autograd():
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
