"""Fixtures of the data-layer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import write_tiny


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return write_tiny(tmp_path / "tiny")
