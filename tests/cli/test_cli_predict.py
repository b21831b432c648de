import csv
import json

import numpy as np

from _tiny import CLASSES
from twostream_das.cli import main


def test_predict_folders_with_labels(trained_run, tiny_root, tmp_path, capsys):
    out = tmp_path / "pred"
    code = main(
        [
            "predict",
            "--checkpoint",
            str(trained_run / "checkpoints" / "best.pt"),
            "--rgb",
            str(tiny_root / "features_rgb"),
            "--flow",
            str(tiny_root / "features_flow"),
            "--out",
            str(out),
            "--labels",
            str(tiny_root / "groundTruth"),
            "--fps",
            "10",
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["videos"]) == 10 and set(summary["metrics"]) == {"rgb", "flow", "fused"}
    num_frames = len((tiny_root / "groundTruth" / "v3.txt").read_text().split())
    probs = np.load(out / "v3_probs.npy")
    assert probs.shape == (len(CLASSES), num_frames)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-4)
    with (out / "v3_segments.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and rows[0]["label"] in CLASSES
    segments = json.loads((out / "v3_segments.json").read_text())
    assert len(segments) == len(rows) or len(segments.get("segments", [])) == len(rows)
    assert (out / "v3.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "v3.txt").is_file()


def test_predict_single_transposed_file_without_labels(trained_run, tiny_root, tmp_path):
    rgb = np.load(tiny_root / "features_rgb" / "v0.npy")
    np.save(tmp_path / "clip.npy", rgb.T)  # (T, D) on disk
    out = tmp_path / "pred"
    code = main(
        [
            "predict",
            "--checkpoint",
            str(trained_run / "checkpoints" / "best.pt"),
            "--rgb",
            str(tmp_path / "clip.npy"),
            "--rgb-orientation",
            "TxD",
            "--flow",
            str(tiny_root / "features_flow" / "v0.npy"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    assert np.load(out / "clip_probs.npy").shape == (len(CLASSES), rgb.shape[1])


def test_predict_wrong_orientation_is_explained(trained_run, tiny_root, tmp_path, capsys):
    np.save(tmp_path / "clip.npy", np.load(tiny_root / "features_rgb" / "v0.npy").T)
    code = main(
        [
            "predict",
            "--checkpoint",
            str(trained_run / "checkpoints" / "best.pt"),
            "--rgb",
            str(tmp_path / "clip.npy"),
            "--flow",
            str(tiny_root / "features_flow" / "v0.npy"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "orientation" in capsys.readouterr().err
