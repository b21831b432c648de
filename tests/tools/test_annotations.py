"""Segment annotations in: CSV/TSV -> groundTruth/ at the features' rate, mapping.txt, and the
folds init-config makes from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from twostream_das.cli import main
from twostream_das.config import load_config
from twostream_das.data.folds import make_folds
from twostream_das.errors import DataError
from twostream_das.tools.annotations import import_annotations, parse_time, read_annotation_file


def _dataset(root: Path, videos: dict[str, int], fps: float = 15.0,
             source_fps: float = 30.0) -> Path:
    """Features (6, T) and video_info as ``extract --fps`` writes them."""
    (root / "features_rgb").mkdir(parents=True)
    (root / "video_info").mkdir()
    rng = np.random.default_rng(0)
    for name, frames in videos.items():
        np.save(root / "features_rgb" / f"{name}.npy", rng.normal(size=(6, frames)).astype("f4"))
        info = {"fps": fps, "frames": frames, "source_fps": source_fps,
                "duration_s": frames / fps, "resampled": True}
        (root / "video_info" / f"{name}.json").write_text(json.dumps(info))
    return root


def _lines(path: Path) -> list[str]:
    return path.read_text().split()


def test_times_in_every_form():
    assert parse_time("12.5") == 12.5
    assert parse_time("1:02.5") == 62.5
    assert parse_time("00:01:02.500") == 62.5
    with pytest.raises(ValueError):
        parse_time("soon")


def test_one_file_per_video_in_seconds_with_a_gap(tmp_path):
    root = _dataset(tmp_path / "ds", {"P01_tea": 30})  # 2 s at 15 fps
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "P01_tea.csv").write_text("start,end,label\n0,0.4,take cup\n1.0,2.0,pour\n")
    summary = import_annotations(notes, root)
    labels = _lines(root / "groundTruth" / "P01_tea.txt")
    # 0-0.4 s: frames 0..5 (round(0.4 * 15) = 6 exclusive); 0.4-1.0 s: background; 1-2 s: 15..29
    assert labels == ["take_cup"] * 6 + ["background"] * 9 + ["pour"] * 15
    assert (root / "mapping.txt").read_text() == "0 background\n1 pour\n2 take_cup\n"
    assert summary.videos == ["P01_tea"] and summary.background_frames == 9


def test_one_tsv_with_a_video_column_in_elan_style_and_frame_numbers(tmp_path):
    root = _dataset(tmp_path / "ds", {"a": 15, "b": 15})
    table = tmp_path / "all.tsv"
    table.write_text("Media File\tBegin Time - hh:mm:ss.ms\tEnd Time - hh:mm:ss.ms\tBehavior\n"
                     "a.mp4\t00:00:00.000\t00:00:01.000\tstir\n"
                     "b.mp4\t00:00:00.000\t00:00:00.500\tcut\n"
                     "b.mp4\t00:00:00.500\t00:00:01.000\tstir\n")
    import_annotations(table, root)
    assert _lines(root / "groundTruth" / "a.txt") == ["stir"] * 15
    assert _lines(root / "groundTruth" / "b.txt") == ["cut"] * 8 + ["stir"] * 7  # round(7.5)=8
    assert (root / "mapping.txt").read_text() == "0 cut\n1 stir\n"  # no gap: no background
    # frame numbers count the video's own 30 fps frames; the features are at 15 fps
    frames = tmp_path / "frames.csv"
    frames.write_text("video,start_frame,end_frame,label\na,0,10,cut\na,10,30,stir\n")
    import_annotations(frames, root, overwrite=True)
    assert _lines(root / "groundTruth" / "a.txt") == ["cut"] * 5 + ["stir"] * 10


def test_bad_tables_are_one_clear_error(tmp_path):
    root = _dataset(tmp_path / "ds", {"v": 30})
    cases = {
        "who,when,what\n1,2,x\n": "have no start or end or label column",
        "start,end,label\n1,0.5,x\n": "ends at 0.5, not after its start 1",
        "start,end,label\n0,1,x\n0.5,1.5,y\n": "overlaps 'x' (0-1 s",
        "start,end,label\n0,3,x\n": "after the end of video v at 2 s (30 frames at 15 fps",
        "start,end,label\n0,soon,x\n": "end 'soon' is not a number",
    }
    for i, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"v{i}" / "v.csv"
        path.parent.mkdir()
        path.write_text(text)
        with pytest.raises(DataError, match=expected.replace("(", r"\(")):
            import_annotations(path, root, overwrite=True)
    other = path.with_name("other.csv")
    other.write_text("start,end,label\n0,1,x\n")
    with pytest.raises(DataError, match="video 'other' has no features"):
        import_annotations(other, root)


def test_folds_by_group_keep_a_subject_out_of_its_training_videos():
    videos = [f"P{p:02d}_{task}" for p in range(1, 6) for task in ("tea", "cereal")]
    folds = make_folds(videos, 3, r"P(\d+)")
    assert sorted(v for test in folds for v in test) == sorted(videos)  # each video tested once
    for test in folds:
        subjects = {v[:3] for v in test}
        train = [v for v in videos if v not in test]
        assert not subjects & {v[:3] for v in train}
    assert [len(t) for t in folds] == [4, 4, 2]
    assert make_folds(["c", "a", "b", "d"], 2) == [["a", "c"], ["b", "d"]]


def test_annotations_to_a_config_that_loads(tmp_path, capsys):
    """CSV segments of 6 videos of 3 subjects -> groundTruth, mapping, folds, config."""
    videos = {f"P{p}_{t}": 20 + p for p in (1, 2, 3) for t in ("x", "y")}
    root = _dataset(tmp_path / "ds", videos)
    rows = ["video,start,end,label"]
    for name, frames in videos.items():
        rows += [f"{name}.mp4,0,0.5,open", f"{name}.mp4,0.5,{frames / 15:.4f},close"]
    (tmp_path / "segments.csv").write_text("\n".join(rows) + "\n")
    assert main(["import-annotations", str(tmp_path / "segments.csv"), "--dataset",
                 str(root)]) == 0
    assert "wrote ground truth of 6 video(s)" in capsys.readouterr().out
    assert main(["init-config", str(root), "--group", r"P(\d)", "--folds", "3"]) == 0
    cfg = load_config(root / "twostream_das.yaml")
    assert cfg.dataset.fps == 15.0  # read from video_info/
    for k in (1, 2, 3):
        test = _lines(root / "splits" / f"test.split{k}.bundle")
        train = _lines(root / "splits" / f"train.split{k}.bundle")
        assert len(test) == 2 and len(train) == 4
        assert not {v[:2] for v in test} & {v[:2] for v in train}
    # the folds exist now: asking for others is refused
    (root / "twostream_das.yaml").unlink()
    assert main(["init-config", str(root), "--folds", "2"]) == 2
    assert "already holds folds" in capsys.readouterr().err


def test_read_annotation_file_takes_a_duration_column(tmp_path):
    path = tmp_path / "clip.csv"
    path.write_text("onset;duration;behaviour\n1,5;2;walk\n".replace(",", "."))
    (seg,) = read_annotation_file(path)
    assert (seg.video, seg.label, seg.start, seg.end) == ("clip", "walk", 1.5, 3.5)
