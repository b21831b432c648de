import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from _tiny import CLASSES
from _torchrun import torchrun
from twostream_das.cli import main


@pytest.fixture
def predict(trained_run):
    """``twostream-das predict --checkpoint <trained best.pt> ARGS...``: the exit code."""
    checkpoint = str(trained_run / "checkpoints" / "best.pt")
    return lambda *args: main(["predict", "--checkpoint", checkpoint, *map(str, args)])


def test_predict_folders_with_labels(predict, tiny_root, tmp_path):
    for stream in ("rgb", "flow"):  # a folder of three videos
        (tmp_path / stream).mkdir()
        for name in ("v1", "v3", "v8"):
            shutil.copy(tiny_root / f"features_{stream}" / f"{name}.npy", tmp_path / stream)
    out = tmp_path / "pred"
    code = predict("--rgb", tmp_path / "rgb", "--flow", tmp_path / "flow", "--out", out,
                   "--labels", tiny_root / "groundTruth", "--fps", 10, "--quiet")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["videos"]) == 3 and set(summary["metrics"]) == {"rgb", "flow", "fused"}
    assert summary["classes"] == list(CLASSES)
    assert summary["labels_dir"] == str((tiny_root / "groundTruth").resolve())
    for stream in ("rgb", "flow"):
        assert (out / "streams" / stream / "v3.txt").read_text().startswith("### Frame level")
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


def test_predict_samples_write_uncertainty_and_review(predict, tiny_root, tmp_path):
    for stream in ("rgb", "flow"):
        (tmp_path / stream).mkdir()
        for name in ("v1", "v3"):
            shutil.copy(tiny_root / f"features_{stream}" / f"{name}.npy", tmp_path / stream)
    out = tmp_path / "pred"
    code = predict("--rgb", tmp_path / "rgb", "--flow", tmp_path / "flow", "--out", out,
                   "--fps", 10, "--quiet", "--samples", "3", "--steps", "3",
                   "--sampler", "dpmpp_2m_sde")
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 3 and summary["steps"] == 3
    assert summary["sampler"] == "dpmpp_2m_sde" and summary["views"] == "all"
    num_frames = len((tiny_root / "groundTruth" / "v3.txt").read_text().split())
    mi = np.load(out / "v3_uncertainty.npy")
    assert mi.shape == (num_frames,) and mi.dtype == np.float32 and mi.min() >= 0
    assert mi.max() > 0  # three samples of an untrained-ish model disagree somewhere
    segments = json.loads((out / "v3_segments.json").read_text())["segments"]
    first = segments[0]
    assert first["uncertainty"] == pytest.approx(
        float(mi[first["start_frame"]:first["end_frame"]].mean()), rel=1e-5)
    with (out / "review.csv").open() as handle:
        review = list(csv.DictReader(handle))
    assert list(review[0]) == ["rank", "video", "label", "start_s", "end_s", "score",
                               "confidence", "uncertainty"]
    assert {r["video"] for r in review} == {"v1", "v3"}
    scores = [float(r["score"]) for r in review]
    assert scores == sorted(scores, reverse=True) and [int(r["rank"]) for r in review] == list(
        range(1, len(review) + 1))
    # eval.review_score's default, max_prob: 1 - the segment's mean confidence
    assert all(float(r["score"]) == pytest.approx(1 - float(r["confidence"])) for r in review)
    mi_out = tmp_path / "mi"
    assert predict("--rgb", tmp_path / "rgb", "--flow", tmp_path / "flow", "--out", mi_out,
                   "--quiet", "--samples", "3", "--steps", "3",
                   "--review-score", "mutual_information") == 0
    with (mi_out / "review.csv").open() as handle:
        by_mi = list(csv.DictReader(handle))
    assert all(float(r["score"]) == pytest.approx(float(r["uncertainty"])) for r in by_mi)
    assert [float(r["score"]) for r in by_mi] == sorted(
        (float(r["score"]) for r in by_mi), reverse=True)
    one = tmp_path / "one"
    assert predict("--rgb", tmp_path / "rgb", "--flow", tmp_path / "flow", "--out", one,
                   "--quiet") == 0
    assert not (one / "v3_uncertainty.npy").exists()  # one sample: no spread, no file
    with (one / "review.csv").open() as handle:
        row = next(csv.DictReader(handle))
    assert row["uncertainty"] == "" and float(row["score"]) == pytest.approx(
        1 - float(row["confidence"]))


def test_predict_refuses_an_earlier_prediction_and_overwrite_leaves_no_stale_file(
    predict, tiny_root, tmp_path, capsys
):
    rgb, flow = (tiny_root / f"features_{s}" / "v3.npy" for s in ("rgb", "flow"))
    out = tmp_path / "pred"
    assert predict("--rgb", rgb, "--flow", flow, "--out", out, "--quiet",
                   "--samples", "2", "--steps", "2") == 0
    assert (out / "v3_uncertainty.npy").is_file()
    mine = out / "notes.txt"  # a file the user put there: never touched
    mine.write_text("mine")
    before = (out / "v3_probs.npy").read_bytes()
    capsys.readouterr()
    assert predict("--rgb", rgb, "--flow", flow, "--out", out, "--quiet") == 2
    err = capsys.readouterr().err
    assert "already holds a prediction" in err and "--overwrite" in err and str(out) in err
    assert (out / "v3_probs.npy").read_bytes() == before  # refused: nothing changed
    assert predict("--rgb", rgb, "--flow", flow, "--out", out, "--quiet", "--overwrite") == 0
    assert not (out / "v3_uncertainty.npy").exists()  # the K = 2 file did not outlive its run
    assert json.loads((out / "summary.json").read_text())["samples"] == 1
    assert mine.read_text() == "mine" and (out / "streams" / "rgb" / "v3.txt").is_file()


def test_no_plots_writes_every_file_but_the_barcode(predict, tiny_root, tmp_path):
    """--no-plots: the same prediction files and summary as with plots, less the PNG; a later
    --overwrite run without plots removes the earlier run's PNG with its other files."""
    rgb, flow = (tiny_root / f"features_{s}" / "v3.npy" for s in ("rgb", "flow"))
    plotted, bare = tmp_path / "plotted", tmp_path / "bare"
    assert predict("--rgb", rgb, "--flow", flow, "--out", plotted, "--quiet") == 0
    assert predict("--rgb", rgb, "--flow", flow, "--out", bare, "--quiet", "--no-plots") == 0
    names = {p.relative_to(plotted) for p in plotted.rglob("*") if p.is_file()}
    assert {p.relative_to(bare) for p in bare.rglob("*") if p.is_file()} == names - {
        Path("v3.png")
    }
    for name in ("v3.txt", "v3_segments.csv", "v3_probs.npy", "review.csv"):
        assert (bare / name).read_bytes() == (plotted / name).read_bytes(), name
    files = json.loads((bare / "summary.json").read_text())["videos"][0]["files"]
    assert "png" not in files and files["probs"] == "v3_probs.npy"
    args = ("--rgb", rgb, "--flow", flow, "--out", plotted, "--quiet", "--overwrite")
    assert predict(*args, "--no-plots") == 0
    assert not (plotted / "v3.png").exists()


def test_predict_precision_option(predict, tiny_root, tmp_path):
    flow = tiny_root / "features_flow" / "v1.npy"
    rgb = tiny_root / "features_rgb" / "v1.npy"
    outs = {}
    for name, extra in (
        ("fp32", []), ("bf16", ["--precision", "bf16"]), ("old", ["--cpu-bf16"])
    ):
        code = predict("--rgb", rgb, "--flow", flow, "--out", tmp_path / name, "--quiet", *extra)
        assert code == 0
        outs[name] = np.load(tmp_path / name / "v1_probs.npy")
    assert not np.array_equal(outs["fp32"], outs["bf16"])  # the option reached the model
    np.testing.assert_array_equal(outs["old"], outs["bf16"])  # the older flag still works
    np.testing.assert_allclose(outs["bf16"], outs["fp32"], atol=0.1)


def test_predict_single_transposed_file_without_labels(predict, tiny_root, tmp_path):
    rgb = np.load(tiny_root / "features_rgb" / "v0.npy")
    np.save(tmp_path / "clip.npy", rgb.T)  # (T, D) on disk
    out = tmp_path / "pred"
    code = predict("--stream", f"rgb={tmp_path / 'clip.npy'}", "--orientation", "rgb=TxD",
                   "--stream", f"flow={tiny_root / 'features_flow' / 'v0.npy'}",
                   "--out", out, "--quiet")
    assert code == 0
    assert np.load(out / "clip_probs.npy").shape == (len(CLASSES), rgb.shape[1])


def _nan_at_frame_2(feats):
    feats = feats.copy()
    feats[1, 2] = np.nan  # dim 1, frame 2 of (D, T)
    return feats


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (np.transpose, "looks transposed: set --orientation rgb to TxD?"),
        (_nan_at_frame_2, "1 non-finite value(s); first: nan at frame 2, dim 1; expected finite"),
    ],
    ids=["transposed", "nan"],
)
def test_bad_feature_files_are_explained(predict, tiny_root, tmp_path, capsys, corrupt, expected):
    np.save(tmp_path / "clip.npy", corrupt(np.load(tiny_root / "features_rgb" / "v0.npy")))
    code = predict("--rgb", tmp_path / "clip.npy", "--flow", tiny_root / "features_flow" / "v0.npy",
                   "--out", tmp_path / "o")
    assert code == 2
    err = capsys.readouterr().err
    assert expected in err and str(tmp_path / "clip.npy") in err
    assert not (tmp_path / "o").exists()  # checked before anything is written


def test_video_needs_features_the_extractor_can_make(predict, tmp_path, capsys):
    code = predict("--video", tmp_path / "clip.mp4", "--out", tmp_path / "o")
    assert code == 2
    err = capsys.readouterr().err
    assert "--video can extract" in err  # the tiny model reads 6-d/5-d
    assert "pass --stream NAME=PATH per stream" in err  # the current syntax, not --rgb/--flow


def test_video_runs_extraction_then_the_same_path(predict, tiny_root, tmp_path, monkeypatch):
    from twostream_das.extraction import FeatureStream
    from twostream_das.workflows import prediction

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
    code = predict("--video", tmp_path / "clip.mp4", "--i3d-rgb-weights", "rgb.pt",
                   "--out", out, "--quiet")
    assert code == 0
    assert calls["weights"]["i3d_rgb_weights"] == "rgb.pt"
    assert calls["streams"] == (FeatureStream.I3D_RGB, FeatureStream.I3D_FLOW)
    assert (out / "clip.txt").is_file() and (out / "clip.png").is_file()


def test_predict_needs_features_or_video(predict, tmp_path, capsys):
    code = predict("--out", tmp_path / "o")
    assert code == 2
    assert "--stream NAME=PATH for each stream" in capsys.readouterr().err


def test_video_without_weights_names_the_flag_and_the_variable(tmp_path, monkeypatch, capsys):
    """A checkpoint of I3D streams (the extractor can make both), no weights given: the error
    names ``--i3d-rgb-weights`` and its environment variable, not the keyword argument."""
    from _model_helpers import small_config
    from twostream_das.checkpoint import make_checkpoint, save_checkpoint
    from twostream_das.extraction import WEIGHTS_ENV
    from twostream_das.model.multi_stream import MultiStreamModel

    for variable in WEIGHTS_ENV.values():
        monkeypatch.delenv(variable, raising=False)
    cfg = small_config("dataset.streams={rgb: {source: i3d_rgb}, flow: {source: i3d_flow}}")
    dims = {"rgb": 1024, "flow": 1024}
    model = MultiStreamModel.from_config(cfg, dims, len(CLASSES))
    checkpoint = save_checkpoint(tmp_path / "i3d.pt",
                                 make_checkpoint(model, cfg, list(CLASSES), dims, epoch=1))
    code = main(["predict", "--checkpoint", str(checkpoint), "--video", str(tmp_path / "a.mp4"),
                 "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "--i3d-rgb-weights (or $TWOSTREAM_DAS_I3D_RGB_WEIGHTS)" in err
    assert "i3d_rgb_weights" not in err.replace("I3D_RGB_WEIGHTS", "")  # not the keyword name



def _files(folder):
    """Every file under ``folder``, relative, sorted."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_two_ranks_under_torchrun_predict_what_one_process_does(
    predict, trained_run, tiny_root, tmp_path
):
    """2 gloo ranks share the 10 tiny videos by feature-file size (frames: 31 x 5, 29 x 2,
    27 x 3: 147 frames, 5 videos each); each writes its own videos' files, rank 0 the summary
    and review of all of them. Labels equal one process's; probabilities to 1e-5 (one process
    batches 4 views a pass (eval.batch_size=4 in the tiny config), the ranks batch their own
    share, and padding and thread counts change the order of float sums; the DDIM draws are
    the same, seeded by each video's features)."""
    rgb, flow = tiny_root / "features_rgb", tiny_root / "features_flow"
    args = ["--rgb", rgb, "--flow", flow, "--labels", tiny_root / "groundTruth", "--samples",
            "2", "--steps", "2"]  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    assert predict(*args, "--out", one, "--quiet") == 0
    checkpoint = trained_run / "checkpoints" / "best.pt"
    done = torchrun(["predict", "--checkpoint", checkpoint, *args, "--out", two])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote predictions for 10 video(s)") == 1  # printed by rank 0
    assert "rank 0 of 2: 5 of 10 videos" in done.stderr
    assert "rank 1 of 2: 5 of 10 videos" in done.stderr
    assert _files(two) == _files(one) and len(_files(one)) == 10 * 8 + 2
    assert json.loads((two / "summary.json").read_text()) == json.loads(
        (one / "summary.json").read_text()
    )  # the same videos in the same order, the same metrics (from the same labels)
    for name in (f"v{i}" for i in range(10)):
        for rel in (f"{name}.txt", f"streams/rgb/{name}.txt", f"streams/flow/{name}.txt"):
            assert (two / rel).read_text() == (one / rel).read_text()
        for suffix in ("_probs.npy", "_uncertainty.npy"):
            np.testing.assert_allclose(
                np.load(two / f"{name}{suffix}"), np.load(one / f"{name}{suffix}"), atol=1e-5
            )
    with (one / "review.csv").open() as a, (two / "review.csv").open() as b:
        rows_one, rows_two = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert len(rows_one) == len(rows_two) >= 10  # at least a segment per video
    for r1, r2 in zip(rows_one, rows_two, strict=True):
        assert [r1[k] for k in ("video", "label", "start_s", "end_s")] == [
            r2[k] for k in ("video", "label", "start_s", "end_s")]
        assert float(r2["score"]) == pytest.approx(float(r1["score"]), abs=1e-5)


def _rank_errors(stderr):
    """The CLI's error messages in the ranks' interleaved stderr."""
    return [part.split("\n")[0] for part in stderr.split("twostream-das predict: error: ")[1:]]


def _stopped_on_bad_input(stderr: str) -> bool:
    """torchrun's failure report lists exit code 2 (the CLI's bad input) for a rank, and any
    other rank as exit 2 too or as terminated by torchrun (SIGTERM) once the first had exited:
    which of the two a rank shows is a race between its own exit and torchrun's."""
    codes = [int(c) for c in re.findall(r"exitcode\s*:\s*(-?\d+)", stderr)]
    return 2 in codes and set(codes) <= {2, -15}


def test_under_torchrun_a_bad_file_on_one_rank_stops_every_rank(trained_run, tiny_root, tmp_path):
    """v1 (31 frames, the second longest by name) is rank 1's: its NaN stops both ranks with
    exit code 2 and the file named, before any video is predicted; an earlier prediction in
    --out stops both on rank 0's refusal."""
    for stream in ("rgb", "flow"):
        shutil.copytree(tiny_root / f"features_{stream}", tmp_path / stream)
    bad = tmp_path / "rgb" / "v1.npy"
    feats = np.load(bad)
    feats[0, 3] = np.nan
    np.save(bad, feats)
    checkpoint = trained_run / "checkpoints" / "best.pt"
    args = ["predict", "--checkpoint", checkpoint, "--rgb", tmp_path / "rgb", "--flow",
            tmp_path / "flow", "--quiet"]  # fmt: skip
    done = torchrun([*args, "--out", tmp_path / "pred"])
    assert done.returncode != 0
    errors = _rank_errors(done.stderr)
    assert len(errors) == 2 and all(f"{bad} has 1 non-finite value" in e for e in errors), errors
    assert _stopped_on_bad_input(done.stderr)
    assert not list((tmp_path / "pred").glob("*.txt"))  # nothing predicted

    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text("{}")
    done = torchrun([*args, "--out", old])
    errors = _rank_errors(done.stderr)
    assert len(errors) == 2 and all(f"--out {old} already holds" in e for e in errors), errors
    assert _stopped_on_bad_input(done.stderr)
    assert sorted(p.name for p in old.iterdir()) == ["summary.json"]
