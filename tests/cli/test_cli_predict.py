import csv
import json
import shutil

import numpy as np

from _tiny import CLASSES
from twostream_das.cli import main


def test_predict_folders_with_labels(trained_run, tiny_root, tmp_path, capsys):
    for stream in ("rgb", "flow"):  # a folder of three videos
        (tmp_path / stream).mkdir()
        for name in ("v1", "v3", "v8"):
            shutil.copy(tiny_root / f"features_{stream}" / f"{name}.npy", tmp_path / stream)
    out = tmp_path / "pred"
    code = main(
        [
            "predict",
            "--checkpoint",
            str(trained_run / "checkpoints" / "best.pt"),
            "--rgb",
            str(tmp_path / "rgb"),
            "--flow",
            str(tmp_path / "flow"),
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
    assert len(summary["videos"]) == 3 and set(summary["metrics"]) == {"rgb", "flow", "fused"}
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


def test_video_needs_features_the_extractor_can_make(trained_run, tmp_path, capsys):
    code = main(["predict", "--checkpoint", str(trained_run / "checkpoints" / "best.pt"),
                 "--video", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "--video can extract" in capsys.readouterr().err  # the tiny model reads 6-d/5-d


def test_video_runs_extraction_then_the_same_path(trained_run, tiny_root, tmp_path, monkeypatch):
    from twostream_das import prediction
    from twostream_das.extraction import FeatureStream

    calls = {}
    wanted = {"rgb": FeatureStream.I3D_RGB, "flow": FeatureStream.I3D_FLOW}
    monkeypatch.setattr(prediction, "extraction_streams", lambda loaded: wanted)
    monkeypatch.setattr(prediction.FeatureExtractor, "from_weights",
                        classmethod(lambda cls, streams, **kw: calls.setdefault("weights", kw)))

    def fake_extract(video, out, extractor, streams, combined, progress):
        calls["streams"] = streams
        for model_stream, source in wanted.items():
            (out / source.folder).mkdir(parents=True, exist_ok=True)
            feats = np.load(tiny_root / f"features_{model_stream}" / "v4.npy")
            np.save(out / source.folder / "clip.npy", feats)

    monkeypatch.setattr(prediction, "extract_videos", fake_extract)
    out = tmp_path / "pred"
    code = main(["predict", "--checkpoint", str(trained_run / "checkpoints" / "best.pt"),
                 "--video", str(tmp_path / "clip.mp4"), "--i3d-rgb-weights", "rgb.pt",
                 "--out", str(out), "--quiet"])
    assert code == 0
    assert calls["weights"]["i3d_rgb_weights"] == "rgb.pt"
    assert calls["streams"] == (FeatureStream.I3D_RGB, FeatureStream.I3D_FLOW)
    assert (out / "clip.txt").is_file() and (out / "clip.png").is_file()


def test_predict_needs_features_or_video(trained_run, tmp_path, capsys):
    code = main(["predict", "--checkpoint", str(trained_run / "checkpoints" / "best.pt"),
                 "--rgb", str(tmp_path), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "--rgb and --flow" in capsys.readouterr().err
