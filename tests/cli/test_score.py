"""``twostream-das score`` on prediction files written in tmp_path."""

import json

import pytest

from twostream_das.cli import main

HEADER = "### Frame level recognition: ###"


@pytest.fixture
def dataset(tmp_path):
    """Two videos; their scores are worked out by hand in the tests below.

    v1: gt   background cut cut mix         pred cut cut cut mix
    v2: gt   cut cut mix mix mix mix        pred cut mix mix mix mix mix
    """
    (tmp_path / "mapping.txt").write_text("0 background\n1 cut\n2 mix\n")
    gt, pred = tmp_path / "groundTruth", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    (gt / "v1.txt").write_text("background\ncut\ncut\nmix\n")
    (gt / "v2.txt").write_text("cut\r\ncut\r\nmix\r\nmix\r\nmix\r\nmix\r\n")  # CRLF
    (pred / "v1.txt").write_text(f"{HEADER}\ncut cut cut mix\n")
    (pred / "v2.txt").write_text(f"{HEADER}\ncut\nmix\nmix\nmix\nmix\nmix\n")  # one per line
    return tmp_path


def args(root, *extra):
    return [
        "score",
        "--gt-dir", str(root / "groundTruth"),
        "--pred-dir", str(root / "pred"),
        "--mapping", str(root / "mapping.txt"),
        *extra,
    ]


def run_json(root, capsys, *extra):
    assert main(args(root, "--json", *extra)) == 0
    return json.loads(capsys.readouterr().out)


def test_score_json_pooled_with_the_default_background(dataset, capsys):
    # Acc: v1 3/4, v2 5/6 -> 8/10 = 80.
    # 'background' dropped: v1 gt cut[1,3) mix[3,4), pred cut[0,3) (IoU 2/3) mix[3,4) (IoU 1);
    # v2 gt cut[0,2) mix[2,6), pred cut[0,1) (IoU 1/2) mix[1,6) (IoU 4/5). Every segment is a
    # hit at 0.1, 0.25 and 0.5 -> F1 100; both edits 100.
    assert run_json(dataset, capsys) == {
        "acc": 80.0, "edit": 100.0, "f1@10": 100.0, "f1@25": 100.0, "f1@50": 100.0,
        "num_videos": 2,
    }


def test_score_without_background_and_per_video(dataset, capsys):
    # No background class: v1 gt has 3 segments (background cut mix), pred 2 (cut mix):
    # Edit 1 - 1/3 = 66.67, TP 2 FN 1. v2 unchanged (TP 2, Edit 100).
    # Pooled: TP 4 FP 0 FN 1 -> P 1, R 0.8 -> F1 2 * 0.8 / 1.8 = 88.89; Edit 83.33.
    out = run_json(dataset, capsys, "--background")
    assert out["f1@50"] == pytest.approx(800 / 9)
    assert out["edit"] == pytest.approx(250 / 3)
    # Per video: F1 v1 = 2 * 1 * (2/3) / (5/3) = 80, v2 = 100 -> 90; Acc (75 + 83.33) / 2.
    out = run_json(dataset, capsys, "--background", "--average", "per-video")
    assert out["f1@10"] == pytest.approx(90.0)
    assert out["acc"] == pytest.approx((75 + 500 / 6) / 2)


def test_score_with_another_background_class(dataset, capsys):
    # 'mix' as background: v1 gt background[0,1) cut[1,3), pred cut[0,3): cut IoU 2/3 but the
    # gt background segment now counts: TP 1 FN 1 in v1; v2 cut IoU 1/2: TP 1.
    # Pooled TP 2 FP 0 FN 1 -> F1 80.
    assert run_json(dataset, capsys, "--background", "mix")["f1@50"] == pytest.approx(80.0)


def test_score_table(dataset, capsys):
    assert main(args(dataset)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["acc", "80.00"]
    assert [line.split()[0] for line in lines[:5]] == ["acc", "edit", "f1@10", "f1@25", "f1@50"]
    assert len({len(line) for line in lines[:5]}) == 1  # values right-aligned in one column
    assert "2 videos, pooled" in lines[-1]


def test_score_length_mismatch_names_the_video_and_both_lengths(dataset, capsys):
    (dataset / "pred" / "v2.txt").write_text(f"{HEADER}\ncut mix mix\n")
    assert main(args(dataset)) == 2
    err = capsys.readouterr().err
    assert "video 'v2'" in err and "has 3 frames" in err and "has 6" in err
    assert "Traceback" not in err


def test_score_missing_ground_truth(dataset, capsys):
    (dataset / "pred" / "v3.txt").write_text(f"{HEADER}\ncut\n")
    assert main(args(dataset)) == 2
    err = capsys.readouterr().err
    assert "video 'v3': no ground truth" in err and "v3.txt" in err


def test_score_unknown_label_and_unknown_background(dataset, capsys):
    (dataset / "pred" / "v1.txt").write_text(f"{HEADER}\nbackground cut stir mix\n")
    assert main(args(dataset)) == 2
    assert "'stir' at frame 2" in capsys.readouterr().err
    (dataset / "pred" / "v1.txt").write_text(f"{HEADER}\nbackground cut cut mix\n")
    assert main(args(dataset, "--background", "SIL")) == 2
    assert "--background 'SIL' is not a class" in capsys.readouterr().err


def test_score_with_a_missing_prediction_is_an_error_unless_allowed(dataset, capsys):
    (dataset / "groundTruth" / "v3.txt").write_text("cut\nmix\n")
    assert main(args(dataset, "--json")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "1 of 3 videos" in err and str(dataset / "pred" / "v3.txt") in err
    assert run_json(dataset, capsys, "--allow-missing")["num_videos"] == 2
    (dataset / "split.bundle").write_text("v1.txt\nv2.txt\n")
    assert run_json(dataset, capsys, "--split", str(dataset / "split.bundle"))["num_videos"] == 2
