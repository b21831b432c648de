"""Fixtures shared by the test packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from _tiny import write_tiny_dataset


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny two-stream dataset of ``_tiny.py``, written once per session.

    Read-only: a test that changes files copies the folder first. ``tests/data`` overrides it
    with a per-test dataset of its own.
    """
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")
