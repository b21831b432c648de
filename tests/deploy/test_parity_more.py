"""Parity beyond the session's export (each test exports its own model: slow): one- and
three-stream checkpoints, and checkpoints converted from DiffAct's oracle files
(``../shared/data/diffact_oracle``; skipped cleanly without them)."""

import numpy as np
import pytest
import torch

from _shared import require_shared
from twostream_das.deploy import host
from twostream_das.deploy.export import export_onnx
from twostream_das.deploy.runtime import OnnxModel
from twostream_das.tools.convert import convert

from ._onnx import write_checkpoint
from .test_runtime import TOLERANCE, parity

pytest.importorskip("onnxruntime")
ORACLE = "data/diffact_oracle"
ORACLE_OVERRIDES = [  # as tests/test_convert.py converts them
    "model.encoder.cond_blocks=[3,5,7]", "eval.steps=5",
    "model.diffusion.signal_scale=0.5", "dataset.background=[]",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("streams", [("rgb",), ("rgb", "flow", "pose")])
def test_one_and_three_stream_checkpoints(tmp_path, streams):
    checkpoint = write_checkpoint(tmp_path / "m.pt", streams, "fusion.rule=product")
    export_onnx(checkpoint, tmp_path / "exp")
    assert parity(checkpoint, tmp_path / "exp", [37, 22], samples=2) <= TOLERANCE


def _converted(tmp_path, suffix: str):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "mapping.txt").write_text("".join(f"{i} c{i}\n" for i in range(6)))
    streams = "{" + ", ".join(f"{s}: {{folder: f_{s}}}" for s in ("rgb", "flow")) + "}"
    out = tmp_path / f"run{suffix}"
    latest = require_shared(f"{ORACLE}/release_latest{suffix}.pt")
    convert("demo", [f"dataset.root={tmp_path / 'data'}", f"dataset.streams={streams}",
                     *ORACLE_OVERRIDES], out, latest=latest)  # fmt: skip
    checkpoint = out / "checkpoints" / "best.pt"
    export_onnx(checkpoint, tmp_path / f"exp{suffix}")
    return checkpoint, tmp_path / f"exp{suffix}"


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["", "_x3"])
def test_converted_oracle_checkpoints(tmp_path, suffix):
    """The exported DiffAct networks (its attention at the sequence ends) match the PyTorch
    path given the same draws, padded batch included; fed DiffAct's own recorded draws, the
    plain weights give DiffAct's probabilities. At trained scale (x3) five chained decoder
    passes turn float32 rounding into up to ~5e-3 of probability (tests/test_convert.py
    measures that floor on the PyTorch path itself), so the bound there is that floor."""
    oracle = torch.load(require_shared(f"{ORACLE}/oracle{suffix}.pt"), weights_only=True)
    checkpoint, folder = _converted(tmp_path, suffix)
    worst = parity(checkpoint, folder, [100, 61], argmax=not suffix)
    print(f"oracle{suffix}: runtime vs PyTorch, same draws: {worst:.2e}")
    assert worst <= (TOLERANCE if not suffix else 5e-3)
    model = OnnxModel.load(folder)
    recs = oracle["streams"]
    feats = {s: recs[s]["features"].numpy() for s in ("rgb", "flow")}
    noise = {s: host.RecordedNoise([d.float().numpy() for d in recs[s]["ddim_draws"]])
             for s in feats}  # fmt: skip
    out = model.sample(feats, np.ones((1, 100), dtype=bool), noise)
    diffact = max(float(np.abs(out[s].probs[0] - recs[s]["ddim_probs"].numpy()).max())
                  for s in feats)  # fmt: skip
    print(f"oracle{suffix}: runtime vs DiffAct's own sampler: {diffact:.2e}")
    if not suffix:
        assert diffact <= 1e-5
