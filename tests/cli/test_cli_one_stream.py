"""One-stream models through the CLI: train, evaluate and predict with one configured stream."""

import json

import numpy as np
import pytest

from _tiny import CLASSES, train_args
from twostream_das.checkpoint import load_checkpoint
from twostream_das.cli import main

ONE_STREAM = "dataset.streams.flow=null"  # the demo preset's RGB stream alone


@pytest.fixture(scope="module")
def one_stream_run(tiny_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("one_stream") / "run"
    assert main(train_args(tiny_root, out, ONE_STREAM)) == 0
    return out


def test_train_stores_one_stream(one_stream_run):
    ckpt = load_checkpoint(one_stream_run / "checkpoints" / "best.pt")
    assert ckpt.stream_dims == {"rgb": 6}
    assert {k.split(".")[1] for k in ckpt.weights} == {"rgb"}
    assert ckpt.selection.fusion_weights == {"rgb": 1.0}  # one stream: weight 1, no search
    header = (one_stream_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val_rgb_acc" in header and "val_fused_acc" in header
    assert not any("flow" in column for column in header)


def test_evaluate_one_stream(one_stream_run, capsys):
    assert main(["evaluate", str(one_stream_run), "--json", "--quiet"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["fusion_weights"] == {"rgb": 1.0}
    assert "flow" not in results
    assert results["fused"] == results["rgb"]  # the fusion of one stream is that stream
    assert main(["evaluate", str(one_stream_run), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "| RGB only |" in table and "FLOW" not in table


def test_predict_one_stream(one_stream_run, tiny_root, tmp_path, capsys):
    checkpoint = str(one_stream_run / "checkpoints" / "best.pt")
    out = tmp_path / "pred"
    code = main(["predict", "--checkpoint", checkpoint,
                 "--stream", f"rgb={tiny_root / 'features_rgb' / 'v1.npy'}",
                 "--labels", str(tiny_root / "groundTruth"), "--out", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["metrics"]) == {"rgb", "fused"}
    assert np.load(out / "v1_probs.npy").shape[0] == len(CLASSES)
    # a stream the checkpoint does not have is a clear error
    code = main(["predict", "--checkpoint", checkpoint,
                 "--rgb", str(tiny_root / "features_rgb" / "v1.npy"),
                 "--flow", str(tiny_root / "features_flow" / "v1.npy"),
                 "--out", str(tmp_path / "bad"), "--quiet"])
    assert code == 2
    assert "the checkpoint's streams are rgb; unknown flow" in capsys.readouterr().err
