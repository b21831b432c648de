"""The read-only material beside the project (``../shared``): where it is, and a clean skip
when it is absent (``TWOSTREAM_DAS_SHARED`` points elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_dir() -> Path:
    """``$TWOSTREAM_DAS_SHARED``, else the ``shared`` folder beside the repository."""
    env = os.environ.get("TWOSTREAM_DAS_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def require_shared(relative: str) -> Path:
    """``shared_dir() / relative``, or skip the calling test with the reason when it is absent."""
    path = shared_dir() / relative
    if not path.exists():
        pytest.skip(f"{path} is not there (set TWOSTREAM_DAS_SHARED to the shared folder)")
    return path
