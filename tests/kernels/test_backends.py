import os
import subprocess
import sys

import pytest

from twostream_das.kernels import Backend, current_backend, native, use_backend
from twostream_das.kernels.backends import backend_from_environment, parse_backend


def test_the_environment_names_a_backend_and_the_older_variable_still_works():
    assert backend_from_environment({}) is None  # the default applies
    assert backend_from_environment({"TWOSTREAM_DAS_BACKEND": "reference"}) is Backend.REFERENCE
    assert backend_from_environment({"TWOSTREAM_DAS_BACKEND": " Native "}) is Backend.NATIVE
    assert backend_from_environment({"TWOSTREAM_DAS_NATIVE": "0"}) is Backend.SHIFTED
    assert backend_from_environment({"TWOSTREAM_DAS_NATIVE": "1"}) is None
    both = {"TWOSTREAM_DAS_BACKEND": "reference", "TWOSTREAM_DAS_NATIVE": "0"}
    assert backend_from_environment(both) is Backend.REFERENCE  # the new variable wins
    with pytest.raises(ValueError, match="TWOSTREAM_DAS_BACKEND: unknown backend 'fast'"):
        backend_from_environment({"TWOSTREAM_DAS_BACKEND": "fast"})


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
