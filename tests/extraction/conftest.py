"""Fixtures of the extraction tests: tiny generated videos and random-weight I3D towers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _extraction_helpers import moving_square_frames, randomize_batchnorm, write_video


@pytest.fixture
def tiny_video(tmp_path: Path) -> Path:
    """A 9-frame 48x40 video (odd T; fewer frames than a 21-frame window)."""
    pytest.importorskip("cv2")
    return write_video(tmp_path / "tiny.mp4", moving_square_frames(9))


@pytest.fixture(scope="session")
def i3d_models() -> dict[str, torch.nn.Module]:
    """Random-weight I3D towers (fixed seed, non-trivial BN), shared read-only by the tests."""
    from twostream_das.extraction.i3d import InceptionI3d

    with torch.random.fork_rng():  # seeded init without touching other tests' RNG state
        torch.manual_seed(0)
        return {"i3d_rgb": randomize_batchnorm(InceptionI3d(3).eval()),
                "i3d_flow": randomize_batchnorm(InceptionI3d(2).eval())}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread in these tests: on a shared, loaded CI machine OpenMP's spinning
    worker threads made the suite 4x slower (61 s vs 15 s measured on 2 busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
