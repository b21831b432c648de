
import numpy as np
import pytest

from _shared import require_shared, shared_dir
from twostream_das.config import load_config
from twostream_das.data.layout import (
    LabelMap,
    read_labels,
    read_mapping,
    read_split,
    train_val_split,
    video_groups,
)
from twostream_das.errors import DataError

from .helpers import write_lines

GTEA = shared_dir() / "data" / "gtea"


# ----------------------------------------------------------------------------- mapping


def test_read_mapping_accepts_crlf_blank_lines_bom_and_any_id_order(tmp_path):
    path = tmp_path / "mapping.txt"
    path.write_bytes(b"\xef\xbb\xbf2 pour\r\n\r\n0 background\r\n  \r\n1 take cup\r\n")
    labels = read_mapping(path)
    assert labels.names == ("background", "take cup", "pour")
    assert len(labels) == 3
    assert labels.index("pour") == 2
    assert "take cup" in labels and "stir" not in labels


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["0 a", "1 b", "1 c"], "line 3: id 1 already used on line 2"),
        (["0 a", "1 b", "2 a"], "line 3: class name 'a' already used on line 1"),
        (["0 a", "1 b", "3 c"], "ids 3 found while 2 are missing; expected contiguous ids 0..2"),
        (["1 a", "2 b"], "ids 2 found while 0 are missing"),
        (["0 a", "b"], "line 2: 'b'; expected '<integer id> <class name>'"),
        (["0 a", "x b"], "line 2"),
        ([], "is empty"),
    ],
)
def test_read_mapping_errors_name_file_line_and_expectation(tmp_path, lines, message):
    path = write_lines(tmp_path / "mapping.txt", lines)
    with pytest.raises(DataError, match="mapping.txt") as err:
        read_mapping(path)
    assert message in str(err.value)


def test_read_mapping_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_mapping(tmp_path / "mapping.txt")


def test_label_map_unknown_name_and_duplicates():
    labels = LabelMap(("a", "b"), source="m.txt")
    with pytest.raises(DataError, match=r"class 'c' is not in m.txt; expected one of a, b"):
        labels.index("c")
    with pytest.raises(DataError, match="appears twice"):
        LabelMap(("a", "a"))


# ----------------------------------------------------------------------------- labels


def test_read_labels_values_crlf_and_blank_lines(tmp_path):
    labels = LabelMap(("background", "cut"))
    path = write_lines(tmp_path / "v.txt", ["cut", "", "cut", "background", ""], newline="\r\n")
    out = read_labels(path, labels)
    assert out.dtype == np.int64
    assert out.tolist() == [1, 1, 0]


def test_read_labels_unknown_label_names_file_and_line(tmp_path):
    labels = LabelMap(("background", "cut"), source="/d/mapping.txt")
    path = write_lines(tmp_path / "v.txt", ["cut", "cut", "stir", "cut"])
    with pytest.raises(DataError) as err:
        read_labels(path, labels)
    msg = str(err.value)
    assert f"{path} line 3: label 'stir' is not in /d/mapping.txt" in msg
    assert "expected one of background, cut" in msg


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\r\n  \r\n"])
def test_read_labels_empty_file(tmp_path, content):
    path = tmp_path / "v.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"groundTruth file {path} is empty"):
        read_labels(path, LabelMap(("a",)))


def test_read_labels_missing_file(tmp_path):
    with pytest.raises(DataError, match="groundTruth file .*v.txt does not exist"):
        read_labels(tmp_path / "v.txt", LabelMap(("a",)))


# ----------------------------------------------------------------------------- splits


def test_read_split_strips_suffix_keeps_order_accepts_crlf(tiny_root):
    write_lines(tiny_root / "splits" / "train.split2.bundle", ["v3.txt", "", "v1"], newline="\r\n")
    assert read_split(tiny_root, "train", 2) == ["v3", "v1"]
    assert read_split(tiny_root, "train", 1) == ["v1", "v2"]
    assert read_split(tiny_root, "test", 1) == ["v3"]


def test_read_split_missing_file_lists_what_exists(tiny_root):
    with pytest.raises(DataError) as err:
        read_split(tiny_root, "test", 7)
    msg = str(err.value)
    assert "test.split7.bundle does not exist" in msg
    assert "test.split1.bundle, train.split1.bundle" in msg


def test_read_split_video_listed_twice(tiny_root):
    write_lines(tiny_root / "splits" / "train.split1.bundle", ["v1.txt", "v2.txt", "v1.txt"])
    with pytest.raises(DataError, match="line 3: video 'v1' already listed on line 1"):
        read_split(tiny_root, "train", 1)


def test_read_split_video_without_ground_truth(tiny_root):
    write_lines(tiny_root / "splits" / "train.split1.bundle", ["v1.txt", "ghost.txt"])
    with pytest.raises(DataError) as err:
        read_split(tiny_root, "train", 1)
    assert "line 2: video 'ghost' has no ground truth" in str(err.value)
    assert str(tiny_root / "groundTruth" / "ghost.txt") in str(err.value)
    assert read_split(tiny_root, "train", 1, check_labels=False) == ["v1", "ghost"]


def test_read_split_empty_and_bad_part(tiny_root):
    write_lines(tiny_root / "splits" / "test.split1.bundle", [""])
    with pytest.raises(DataError, match="is empty"):
        read_split(tiny_root, "test", 1)
    with pytest.raises(DataError, match="split part 'dev' is invalid"):
        read_split(tiny_root, "dev", 1)


# ----------------------------------------------------------------------------- train / val


def test_train_val_split_carve_out_is_seeded_sorted_and_order_free(tmp_path):
    names = [f"v{i}" for i in range(8)]
    train, val = train_val_split(tmp_path, 1, names, 0.25, seed=3)
    assert len(val) == 2 and len(train) == 6  # round(0.25 * 8) = 2
    assert sorted(train) == train and sorted(val) == val
    assert sorted(train + val) == names
    assert train_val_split(tmp_path, 1, names[::-1], 0.25, seed=3) == (train, val)
    draws = {tuple(train_val_split(tmp_path, 1, names, 0.25, seed=s)[1]) for s in range(10)}
    assert len(draws) > 1


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(20, 0.15, 3), (10, 0.15, 2), (10, 0.25, 3), (3, 0.1, 1), (2, 0.9, 1), (1, 0.5, 0),
     (10, 0.0, 0)],
)
def test_train_val_split_counts(tmp_path, n, fraction, expected):
    names = [f"v{i:02d}" for i in range(n)]
    train, val = train_val_split(tmp_path, 1, names, fraction, seed=0)
    assert len(val) == expected and len(train) == n - expected


def test_video_groups_take_the_first_capture_group_or_the_match():
    names = ["P03_cam01_P03_tea", "P03_webcam02_P03_tea", "P12_cam01_P12_juice"]
    assert video_groups(names, r"(P\d+)_") == {names[0]: "P03", names[1]: "P03", names[2]: "P12"}
    assert video_groups(["rgb-07-2"], r"rgb-\d+") == {"rgb-07-2": "rgb-07"}
    assert video_groups(["a", "b"], None) == {"a": "a", "b": "b"}
    expected = r"video 'x1' does not match dataset.val_group '\(P\\d\+\)_'"
    with pytest.raises(DataError, match=expected):
        video_groups(["P01_a", "x1"], r"(P\d+)_")


def test_train_val_split_by_group_draws_whole_groups(tmp_path):
    """Persons a, b, c, d with 2, 2, 3, 1 videos; a fraction of 0.25 asks for 2 videos: whole
    persons are drawn until they hold at least that many, never all persons."""
    names = ["a_1", "a_2", "b_1", "b_2", "c_1", "c_2", "c_3", "d_1"]
    for seed in range(6):
        train, val = train_val_split(tmp_path, 1, names, 0.25, seed, r"^(\w)_")
        groups = video_groups(names, r"^(\w)_")
        assert not {groups[n] for n in train} & {groups[n] for n in val}
        assert len(val) >= 2 and sorted(train + val) == names
    assert train_val_split(tmp_path, 1, names, 0.25, 3, r"^(\w)_") == train_val_split(
        tmp_path, 1, names[::-1], 0.25, 3, r"^(\w)_")
    everything = train_val_split(tmp_path, 1, names, 0.9, 0, r"^(\w)_")
    assert everything[0] and everything[1]  # one person always trains
    with pytest.raises(DataError, match="one group"):
        train_val_split(tmp_path, 1, ["a_1", "a_2"], 0.5, 0, r"^(\w)_")


def test_val_bundle_sharing_a_group_with_training_is_refused(tiny_root):
    for name in ("p1_x", "p1_y", "p2_x"):
        write_lines(tiny_root / "groundTruth" / f"{name}.txt", ["background"])
    write_lines(tiny_root / "splits" / "val.split1.bundle", ["p1_x.txt"])
    with pytest.raises(DataError, match="group 'p1'.*also has training videos"):
        train_val_split(tiny_root, 1, ["p1_x", "p1_y", "p2_x"], 0.5, 0, r"(p\d)_")
    assert train_val_split(tiny_root, 1, ["p1_x", "p2_x"], 0.5, 0, r"(p\d)_") == (
        ["p2_x"], ["p1_x"])


@pytest.mark.parametrize(("preset", "folds"), [("breakfast", 4), ("50salads", 5), ("gtea", 4)])
def test_presets_validate_on_groups_that_never_train_on_the_real_splits(preset, folds):
    """On the real label sets: every fold's validation videos share no person (Breakfast: no
    session or camera view either, as those belong to a person) with the videos that train."""
    root = require_shared(f"data/{preset}/splits").parent
    cfg = load_config(preset).dataset
    for fold in range(1, folds + 1):
        names = read_split(root, "train", fold, check_labels=False)
        train, val = train_val_split(root, fold, names, cfg.val_fraction, cfg.val_seed,
                                     cfg.val_group)
        groups = video_groups(names, cfg.val_group)
        assert val and not {groups[n] for n in train} & {groups[n] for n in val}
        if preset == "breakfast":  # a session (person + recipe) is filmed by several cameras
            session = {n: (n.split("_")[0], n.split("_")[-1]) for n in names}
            assert not {session[n] for n in train} & {session[n] for n in val}


def test_train_val_split_uses_val_bundle(tiny_root):
    write_lines(tiny_root / "splits" / "val.split1.bundle", ["v2.txt"], newline="\r\n")
    assert train_val_split(tiny_root, 1, ["v2", "v1"], 0.5, seed=0) == (["v1"], ["v2"])


def test_train_val_split_val_bundle_must_be_in_train(tiny_root):
    write_lines(tiny_root / "splits" / "val.split1.bundle", ["v3.txt"])
    with pytest.raises(DataError, match="video 'v3' is not in .*train.split1.bundle"):
        train_val_split(tiny_root, 1, ["v1", "v2"], 0.5, seed=0)


# ----------------------------------------------------------------------------- real data


def test_real_gtea_layout():
    if not GTEA.is_dir():
        pytest.skip(f"{GTEA} is not available")
    labels = read_mapping(GTEA / "mapping.txt")
    assert len(labels) == 11 and labels.index("background") == 10
    train, test = read_split(GTEA, "train", 1), read_split(GTEA, "test", 1)
    assert len(train) == 21 and len(test) == 7 and not set(train) & set(test)
    for video in test[:3]:
        ids = read_labels(GTEA / "groundTruth" / f"{video}.txt", labels)
        assert ids.ndim == 1 and 500 < len(ids) < 2500
        assert ids.min() >= 0 and ids.max() <= 10
    fit, val = train_val_split(GTEA, 1, train, 0.15, seed=0)
    assert len(val) == 3 and sorted(fit + val) == sorted(train)


def test_a_val_bundle_taking_every_training_video_is_refused(tmp_path):
    write_lines(tmp_path / "splits" / "val.split1.bundle", ["b.txt", "a.txt"])
    for video in ("a", "b"):
        write_lines(tmp_path / "groundTruth" / f"{video}.txt", ["x"])
    with pytest.raises(DataError, match=r"val\.split1\.bundle lists all 2 training videos of "
                       r".*train\.split1\.bundle; expected some left to train on"):
        train_val_split(tmp_path, 1, ["a", "b"], 0.15, seed=0)


def test_background_names_must_be_classes_of_the_mapping():
    from twostream_das.data.layout import LabelMap, check_background

    label_map = LabelMap(("background", "cut"), source="data/mapping.txt")
    check_background(label_map, ["background"])
    check_background(label_map, [])
    with pytest.raises(DataError, match=r"dataset.background names 'backgrond', which is not a "
                       r"class of data/mapping.txt; expected names of its classes \(background, "
                       r"cut\), or \[\] for no background class"):
        check_background(label_map, ["backgrond"])
