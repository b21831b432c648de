"""io: MS-TCN prediction files, segment CSV/JSON, atomic writes, prediction folders."""

import csv
import json
import os

import numpy as np
import pytest

from twostream_das import outputs as tio
from twostream_das.data.layout import LabelMap
from twostream_das.errors import DataError

NAMES = ("background", "cut", "mix")


# ----------------------------------------------------------------------------- atomic writes


# ----------------------------------------------------------------------------- predictions


def test_write_prediction_is_the_ms_tcn_format(tmp_path):
    path = tio.write_prediction(tmp_path / "v1.txt", np.array([0, 1, 1, 2]), NAMES)
    assert path.read_text() == "### Frame level recognition: ###\nbackground cut cut mix\n"
    # What MS-TCN / ASFormer / DiffAct's eval.py does with it:
    assert path.read_text().split("\n")[1].split() == ["background", "cut", "cut", "mix"]
    np.testing.assert_array_equal(tio.read_prediction(path, NAMES), [0, 1, 1, 2])


def test_write_prediction_accepts_names_and_checks_ids(tmp_path):
    tio.write_prediction(tmp_path / "a.txt", np.array(["cut", "mix"]))
    assert tio.read_prediction_names(tmp_path / "a.txt") == ["cut", "mix"]
    with pytest.raises(ValueError, match="class id 3 is invalid"):
        tio.write_prediction(tmp_path / "b.txt", np.array([0, 3]), NAMES)
    with pytest.raises(ValueError, match="expected the class names"):
        tio.write_prediction(tmp_path / "c.txt", np.array([0, 1]))
    with pytest.raises(ValueError, match="white space"):
        tio.write_prediction(tmp_path / "d.txt", np.array([0]), ["take bowl"])
    assert not (tmp_path / "b.txt").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"### Frame level recognition: ###\ncut cut mix\n",
        b"### Frame level recognition: ###\ncut cut mix",  # no final newline (DiffAct writes so)
        b"### Frame level recognition: ###\r\ncut\r\ncut\r\n\r\nmix\r\n",  # one per line, CRLF
        b"\xef\xbb\xbf\n### Frame level recognition: ###\n  cut cut\nmix  \n\n",  # BOM, blanks
    ],
)
def test_read_prediction_accepts_the_variants(tmp_path, content):
    path = tmp_path / "v.txt"
    path.write_bytes(content)
    np.testing.assert_array_equal(tio.read_prediction(path, NAMES), [1, 1, 2])
    assert tio.read_prediction(path, {"cut": 7, "mix": 9}).tolist() == [7, 7, 9]


def test_read_prediction_errors_name_the_file_and_the_value(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("### Frame level recognition: ###\ncut stir mix\n")
    with pytest.raises(DataError, match=r"v\.txt: label 'stir' at frame 1 is not a known class"):
        tio.read_prediction(path, NAMES)
    path.write_text("cut cut mix\n")
    with pytest.raises(DataError, match=r"v\.txt line 1: 'cut cut mix'; expected the header"):
        tio.read_prediction(path, NAMES)
    path.write_text("### Frame level recognition: ###\n\n")
    with pytest.raises(DataError, match="no labels"):
        tio.read_prediction(path, NAMES)
    path.write_text("")
    with pytest.raises(DataError, match="is empty"):
        tio.read_prediction(path, NAMES)
    with pytest.raises(DataError, match="does not exist"):
        tio.read_prediction(tmp_path / "missing.txt", NAMES)


# ----------------------------------------------------------------------------- segments


def test_segment_records_hand_worked():
    # labels 1 1 1 2 2 at 10 fps: cut [0, 3) = 0.0-0.3 s, mix [3, 5) = 0.3-0.5 s.
    # confidence = mean probability of the segment's own class: cut (0.5+0.7+0.9)/3 = 0.7,
    # mix (0.6+0.8)/2 = 0.7.
    labels = np.array([1, 1, 1, 2, 2])
    probs = np.array(
        [
            [0.1, 0.1, 0.0, 0.1, 0.1],
            [0.5, 0.7, 0.9, 0.3, 0.1],
            [0.4, 0.2, 0.1, 0.6, 0.8],
        ]
    )
    recs = tio.segment_records(labels, probs, NAMES, fps=10.0)
    assert [(r.label, r.label_id, r.start_frame, r.end_frame, r.num_frames) for r in recs] == [
        ("cut", 1, 0, 3, 3),
        ("mix", 2, 3, 5, 2),
    ]
    assert [r.start_s for r in recs] == pytest.approx([0.0, 0.3])
    assert [r.end_s for r in recs] == pytest.approx([0.3, 0.5])
    assert [r.confidence for r in recs] == pytest.approx([0.7, 0.7])


def test_segment_files(tmp_path):
    labels = np.array([0, 0, 1])
    probs = np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.0]])
    recs = tio.segment_records(labels, probs, NAMES, 15.0)
    assert tio.write_segments_csv(tmp_path / "s.csv", recs) == tmp_path / "s.csv"
    with (tmp_path / "s.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(tio.SEGMENT_FIELDS) and len(rows) == len(recs) == 2
    assert rows[0]["label"] == "background" and rows[0]["end_frame"] == "2"
    assert float(rows[0]["confidence"]) == pytest.approx(0.75)
    tio.write_segments_json(tmp_path / "s.json", recs, 15.0)
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["end_frame"] == "exclusive" and data["num_frames"] == 3 and data["fps"] == 15.0
    assert data["segments"][1] == {
        "label": "cut", "label_id": 1, "start_frame": 2, "end_frame": 3, "num_frames": 1,
        "start_s": pytest.approx(2 / 15), "end_s": pytest.approx(0.2), "confidence": 1.0,
        "uncertainty": None,
    }


def test_segments_without_probabilities_or_fps_leave_those_fields_empty(tmp_path):
    tio.write_segments_csv(tmp_path / "s.csv", tio.segment_records(np.array(["cut", "mix"])))
    row = next(csv.DictReader((tmp_path / "s.csv").open()))
    assert row["label"] == "cut" and row["label_id"] == "" and row["start_s"] == ""
    assert row["confidence"] == ""


def test_segment_uncertainty_is_the_mean_over_the_segment():
    # labels 0 0 1 1 1: uncertainty (0.2 + 0.4) / 2 = 0.3 and (0 + 0.3 + 0.6) / 3 = 0.3
    recs = tio.segment_records(np.array([0, 0, 1, 1, 1]), None, NAMES, None,
                               np.array([0.2, 0.4, 0.0, 0.3, 0.6]))
    assert [r.uncertainty for r in recs] == pytest.approx([0.3, 0.3])
    with pytest.raises(ValueError, match=r"expected \(5,\)"):
        tio.segment_records(np.array([0, 0, 1, 1, 1]), None, NAMES, None, np.zeros(4))


def test_segment_records_check_the_probability_shape():
    with pytest.raises(ValueError, match=r"expected \(C, 3\)"):
        tio.segment_records(np.array([0, 0, 1]), np.zeros((3, 4)), NAMES)


# ----------------------------------------------------------------------------- folders


def write_gt(folder, video, names):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{video}.txt").write_text("".join(f"{n}\n" for n in names))


def test_read_prediction_dir(tmp_path):
    gt_dir, pred_dir = tmp_path / "groundTruth", tmp_path / "pred"
    write_gt(gt_dir, "b", ["cut", "mix"])
    write_gt(gt_dir, "a", ["mix"])
    tio.write_prediction(pred_dir / "b.txt", np.array([1, 1]), NAMES)
    tio.write_prediction(pred_dir / "a.txt", np.array([2]), NAMES)
    (pred_dir / "summary.json").write_text("{}")  # not a prediction: ignored
    got = tio.read_prediction_dir(pred_dir, gt_dir, LabelMap(NAMES))
    assert got.names == ["a", "b"]
    assert [g.tolist() for g in got.gts] == [[2], [1, 2]]
    assert [p.tolist() for p in got.preds] == [[2], [1, 1]]


def test_read_prediction_dir_errors(tmp_path):
    gt_dir, pred_dir = tmp_path / "groundTruth", tmp_path / "pred"
    write_gt(gt_dir, "a", ["cut", "mix", "mix"])
    with pytest.raises(DataError, match="does not exist"):
        tio.read_prediction_dir(pred_dir, gt_dir, LabelMap(NAMES))
    os.makedirs(pred_dir)
    with pytest.raises(DataError, match="no prediction files"):
        tio.read_prediction_dir(pred_dir, gt_dir, LabelMap(NAMES))
    tio.write_prediction(pred_dir / "a.txt", np.array([1, 2]), NAMES)
    with pytest.raises(DataError, match=r"video 'a': .*a\.txt has 2 frames but .*a\.txt has 3"):
        tio.read_prediction_dir(pred_dir, gt_dir, LabelMap(NAMES))
    tio.write_prediction(pred_dir / "zz.txt", np.array([1]), NAMES)
    (pred_dir / "a.txt").unlink()
    with pytest.raises(DataError, match=r"video 'zz': no ground truth"):
        tio.read_prediction_dir(pred_dir, gt_dir, LabelMap(NAMES))


def test_read_prediction_dir_names_the_missing_predictions(tmp_path, caplog):
    gt_dir, pred_dir = tmp_path / "groundTruth", tmp_path / "pred"
    for video in ("a", "b", "c"):
        write_gt(gt_dir, video, ["cut", "mix"])
    tio.write_prediction(pred_dir / "a.txt", np.array([1, 2]), NAMES)
    tio.write_prediction(pred_dir / "c.txt", np.array([1, 1]), NAMES)
    with pytest.raises(DataError, match=r"1 of 3 videos .* no prediction: missing .*pred/b\.txt"):
        tio.read_prediction_dir(pred_dir, gt_dir, LabelMap(NAMES))
    got = tio.read_prediction_dir(pred_dir, gt_dir, LabelMap(NAMES), allow_missing=True)
    assert got.names == ["a", "c"] and "no prediction for" in caplog.text
    # a split's videos only: predictions of other videos are not scored
    assert tio.read_prediction_dir(pred_dir, gt_dir, LabelMap(NAMES), ["c"]).names == ["c"]
    with pytest.raises(DataError, match=r"listed in --split have no prediction: missing .*b\.txt"):
        tio.read_prediction_dir(pred_dir, gt_dir, LabelMap(NAMES), ["a", "b"])


