import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/_tiny.py

from _tiny import train_args, write_tiny_dataset  # noqa: E402
from twostream_das.cli import main  # noqa: E402


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("cli_data") / "tiny")


@pytest.fixture(scope="session")
def trained_run(tiny_root, tmp_path_factory):
    """A finished fold-1 run trained through the CLI (read-only for the tests)."""
    out = tmp_path_factory.mktemp("cli_runs") / "run"
    assert main(train_args(tiny_root, out)) == 0
    return out
