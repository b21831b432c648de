"""Fixtures shared by the test packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from _tiny import train_args, write_tiny_dataset
from twostream_das.cli import main


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny two-stream dataset of ``_tiny.py``, written once per session.

    Read-only: a test that changes files copies the folder first. ``tests/data`` overrides it
    with a per-test dataset of its own.
    """
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="session")
def trained_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished fold-1 run trained through the CLI on ``tiny_root`` (read-only for the
    tests)."""
    out = tmp_path_factory.mktemp("cli_runs") / "run"
    assert main(train_args(tiny_root, out)) == 0
    return out
