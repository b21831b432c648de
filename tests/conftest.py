"""Fixtures shared by the test packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from _tiny import train_args, write_tiny_dataset
from twostream_das.cli import main

EXPORTED_SETTINGS = (  # what the exported test model carries besides its networks
    "dataset.standardize=true", "dataset.sample_rate=2", "eval.samples=2",
    "fusion.weights={rgb: 0.6, flow: 0.4}", "postprocess.kind=median", "postprocess.window=5",
)


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


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small two-stream checkpoint (standardised, sample rate 2, K = 2, median filter) and
    the folder ``twostream-das export`` made of it, once per session (read-only):
    ``(checkpoint, folder)``. Skipped without the 'onnx' extra."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    from deploy._onnx import write_checkpoint

    root = tmp_path_factory.mktemp("onnx")
    checkpoint = write_checkpoint(root / "model.pt", ("rgb", "flow"), *EXPORTED_SETTINGS)
    assert main(["export", str(checkpoint), "--out", str(root / "exported"), "--quiet"]) == 0
    return checkpoint, root / "exported"
