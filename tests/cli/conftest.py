"""Fixtures of the command-line tests."""

import pytest

from _tiny import train_args
from twostream_das.cli import main


@pytest.fixture(scope="session")
def trained_run(tiny_root, tmp_path_factory):
    """A finished fold-1 run trained through the CLI (read-only for the tests)."""
    out = tmp_path_factory.mktemp("cli_runs") / "run"
    assert main(train_args(tiny_root, out)) == 0
    return out
