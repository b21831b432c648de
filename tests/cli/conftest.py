import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/_tiny.py

from _tiny import tiny_overrides, write_tiny_dataset  # noqa: E402
from twostream_das.cli import main  # noqa: E402


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("cli_data") / "tiny")


@pytest.fixture(scope="session")
def trained_run(tiny_root, tmp_path_factory):
    """A finished fold-1 run trained through the CLI (read-only for the tests)."""
    out = tmp_path_factory.mktemp("cli_runs") / "run"
    code = main(
        [
            "train",
            "--config",
            "demo",
            "--set",
            *tiny_overrides(tiny_root),
            "--fold",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    return out
