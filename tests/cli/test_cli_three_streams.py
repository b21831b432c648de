"""A third stream is one more ``dataset.streams`` entry (docs/ARCHITECTURE.md): train, select
one fusion weight per stream, and predict with ``--stream NAME=PATH``, with no code change."""

import json

import numpy as np

from _tiny import train_args, write_tiny_dataset
from twostream_das.checkpoint import load_checkpoint
from twostream_das.cli import main

THREE = ("dataset.streams={rgb: {folder: features_rgb}, flow: {folder: features_flow}, "
         "pose: {folder: features_pose, orientation: TxD}}")


def test_a_third_stream_trains_selects_and_predicts(tmp_path):
    root = write_tiny_dataset(tmp_path / "tiny")
    (root / "features_pose").mkdir()
    for path in sorted((root / "features_rgb").glob("*.npy")):  # a (T, 3) pose-like stream
        np.save(root / "features_pose" / path.name, np.load(path)[:3].T.copy())
    out = tmp_path / "run"
    assert main(train_args(root, out, THREE, "train.epochs=1")) == 0
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert best.stream_dims == {"rgb": 6, "flow": 5, "pose": 3}
    weights = best.selection.fusion_weights
    assert list(weights) == ["rgb", "flow", "pose"]
    # fusion inside the sampler: a point of the simplex at fusion.joint_grid_step (0.25)
    assert all(w in (0.0, 0.25, 0.5, 0.75, 1.0) for w in weights.values())
    assert sum(weights.values()) == 1.0
    streams = [f"{s}={root / f'features_{s}' / 'v1.npy'}" for s in ("rgb", "flow", "pose")]
    args = ["predict", "--checkpoint", str(out / "checkpoints" / "best.pt"), "--out",
            str(tmp_path / "pred"), "--labels", str(root / "groundTruth"), "--quiet"]
    assert main(args + [x for s in streams for x in ("--stream", s)]) == 0
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert set(summary["metrics"]) == {"rgb", "flow", "pose", "fused"}
    assert summary["fusion_weights"] == weights.to_dict()
