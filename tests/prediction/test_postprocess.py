"""Post-processing: purge, median filter, mode filter; hand-worked values."""

import numpy as np
import pytest
from scipy.ndimage import generic_filter

from _reference import pipeline_oracle
from twostream_das.config import PostprocessKind
from twostream_das.data.temporal import average_views
from twostream_das.prediction.postprocess import (
    diffact_purge,
    median_filter,
    mode_filter,
    postprocess,
    purge,
)


def seq(text: str) -> np.ndarray:
    return np.array(list(text))


def text(labels: np.ndarray) -> str:
    return "".join(labels.tolist())


# ----------------------------------------------------------------------------- purge


@pytest.mark.parametrize(
    ("labels", "min_len", "expected"),
    [
        # a 1-frame 'b' between a and c: L // 2 = 0 frames to the left, 1 to the right.
        ("aaaabccccc", 3, "aaaacccccc"),
        # a 2-frame 'b': 1 frame to each neighbour.
        ("aaaabbcccc", 3, "aaaaaccccc"),
        # a 3-frame 'b' is kept at min_len 3 (shorter than 3 only) and split 1 | 2 at min_len 4.
        ("aaaabbbcccc", 3, "aaaabbbcccc"),
        ("aaaabbbcccc", 4, "aaaaacccccc"),
        # short segments at the ends go wholly to their only neighbour.
        ("abbbbbbc", 2, "bbbbbbbb"),
        # neighbours with the same label merge: a a a b a a a -> one 'a' segment.
        ("aaabaaa", 2, "aaaaaaa"),
        # shortest first (earliest on ties): the 1-frame 'c' goes wholly (L // 2 = 0) to its
        # right neighbour 'b'; the two 'b's then touch and merge into 4 frames, which stay.
        ("aaaaabbcbdddd", 3, "aaaaabbbbdddd"),
        # min_len 1 keeps everything.
        ("abab", 1, "abab"),
        # every segment short: the earliest shortest goes first until one segment is left:
        # a b c -> (a to b) b b c -> (c to b) b b b.
        ("abc", 5, "bbb"),
    ],
)
def test_purge_hand_worked(labels, min_len, expected):
    assert text(purge(seq(labels), min_len)) == expected


def test_purge_on_ids_keeps_dtype_and_length():
    labels = np.array([0, 0, 0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 3], dtype=np.int64)
    # 1 (1 frame) goes wholly to 2; then 2 has 3 frames: kept at min_len 3.
    out = purge(labels, 3)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 0, 2, 2, 2, 3, 3, 3, 3, 3])


def test_purge_leaves_no_short_segment_on_random_input():
    rng = np.random.default_rng(0)
    for _ in range(100):
        labels = rng.integers(0, 4, int(rng.integers(1, 60)))
        out = purge(labels, 4)
        assert out.shape == labels.shape
        change = np.flatnonzero(np.diff(out)) + 1
        lengths = np.diff(np.concatenate(([0], change, [out.size])))
        assert len(lengths) == 1 or lengths.min() >= 4


def test_purge_rejects_a_bad_window():
    with pytest.raises(ValueError, match="window 0"):
        purge(seq("ab"), 0)


@pytest.mark.parametrize(
    ("labels", "max_len", "expected"),
    [
        # at most N: a 3-frame 'b' goes at N = 3 (ours keeps it at window 3), split 1 | 2.
        ("aaaabbbccccc", 3, "aaaaaccccccc"),
        ("aaaabbbcccc", 2, "aaaabbbcccc"),
        # one pass over the original segments: 'b' and 'c' are both short; 'b' takes the
        # original labels of its neighbours (a | c), 'c' then (b | d), so a 'b' frame is left.
        ("aaaaabbccdddd", 2, "aaaaaacbddddd"),
        # a purged last segment takes its left neighbour's original label (not what that
        # neighbour became) and keeps its last frame: 'b' -> a | c, 'c' (counted 3) -> b b b c.
        ("aaaabbbcccc", 3, "aaaaaccbbbc"),
        # the first segment goes wholly to the second's label
        ("abbbbb", 1, "bbbbbb"),
        # the last segment is counted one frame short (DiffAct's segment ends): a 2-frame 'c'
        # counts as 1 and is purged at N = 1 except its very last frame.
        ("aaaacc", 1, "aaaaac"),
        ("aaaac", 1, "aaaac"),  # a 1-frame last segment counts 0 frames: nothing to hand over
        ("aaaa", 5, "aaaa"),  # one segment: unchanged
    ],
)
def test_diffact_purge_hand_worked(labels, max_len, expected):
    assert text(diffact_purge(seq(labels), max_len)) == expected


# ----------------------------------------------------------------------------- median


def test_median_filter_hand_worked():
    # class 0: 1 1 0 1 1 ; class 1: 0 0 1 0 0 -> window 3 removes the single-frame spike.
    probs = np.array([[1, 1, 0, 1, 1], [0, 0, 1, 0, 0]], dtype=float)
    out = median_filter(probs, 3)
    np.testing.assert_allclose(out, [[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(postprocess(probs, PostprocessKind.MEDIAN, 3), [0] * 5)


def test_median_filter_is_centred_and_renormalised():
    # A step in class 0 at frame 3 must stay at frame 3 (no shift) for an odd window.
    p0 = np.array([0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1])
    probs = np.stack([p0, 1 - p0, np.full(7, 0.5)])  # sums to 1.5 per frame
    out = median_filter(probs, 3)
    np.testing.assert_allclose(out.sum(axis=0), 1.0)
    np.testing.assert_array_equal(np.argmax(out, axis=0), [0, 0, 0, 1, 1, 1, 1])


# ----------------------------------------------------------------------------- mode


def test_mode_filter_hand_worked():
    # window 3: the isolated 'b' at frame 2 loses 1:2 to 'a'; the two 'c's at the end hold.
    assert text(mode_filter(seq("aabaacc"), 3)) == "aaaaacc"
    # window 4 (2 back, 1 forward) at frame 1 of 'abab': frames -1..2 = a(reflected) a b a -> a.
    assert text(mode_filter(seq("abab"), 4))[1] == "a"


def test_mode_filter_ties_go_to_the_smallest_label():
    # window 2 covers frames t-1 and t: every window of 0 1 0 1 holds one of each -> 0;
    # at t = 0 the reflected frame -1 is 0 -> 0 0.
    np.testing.assert_array_equal(mode_filter(np.array([0, 1, 0, 1]), 2), [0, 0, 0, 0])
    np.testing.assert_array_equal(mode_filter(np.array([5, 2, 5, 2]), 2), [5, 2, 2, 2])


def test_mode_filter_matches_scipy_generic_filter():
    def modal(window):  # the research code's rule, without the scipy.stats.mode API it relied on
        return np.argmax(np.bincount(window.astype(np.int64)))

    rng = np.random.default_rng(0)
    for _ in range(300):
        t = int(rng.integers(1, 40))
        labels = rng.integers(0, int(rng.integers(1, 5)), t)
        window = int(rng.integers(1, 2 * t + 2))  # scipy zero-fills beyond ~8 T; stay well inside
        expected = generic_filter(labels, modal, size=window, mode="reflect")
        np.testing.assert_array_equal(mode_filter(labels, window), expected)


# ----------------------------------------------------------------------------- entry point


def test_postprocess_kinds():
    # argmax: 0 0 1 0 0 2 2 ; none keeps it, mode 3 and purge 2 remove the lone 1.
    probs = np.zeros((3, 7))
    probs[[0, 0, 1, 0, 0, 2, 2], np.arange(7)] = 1.0
    np.testing.assert_array_equal(postprocess(probs, "none", 3), [0, 0, 1, 0, 0, 2, 2])
    smooth = [0, 0, 0, 0, 0, 2, 2]
    np.testing.assert_array_equal(postprocess(probs, PostprocessKind.MODE, 3), smooth)
    np.testing.assert_array_equal(postprocess(probs, PostprocessKind.PURGE, 2), smooth)
    out = postprocess(probs, PostprocessKind.MEDIAN, 3)
    assert out.dtype == np.int64 and out.shape == (7,)


def test_postprocess_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(C, T\)"):
        postprocess(np.zeros(5), "none", 1)
    with pytest.raises(ValueError):
        postprocess(np.zeros((2, 5)), "smooth", 3)


# ----------------------------------------------------------------------------- sample rate > 1


def test_postprocess_at_a_sample_rate_hand_worked():
    """r = 2, T = 9: views of 5 and 4 frames are cropped to 4 and averaged; the argmax there is
    0 1 0 0; restored (ticks at 1, 3, 5, 7, ties to the earlier) it is 0 0 0 1 1 0 0 0 0."""
    view0 = np.array([[1, 0, 1, 1, 0], [0, 1, 0, 0, 1]], dtype=float)
    view1 = np.array([[1, 0, 1, 1], [0, 1, 0, 0]], dtype=float)
    avg = average_views([view0, view1])  # (2, 4)
    blip = [0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert postprocess(avg, "none", 1, 2, 9).tolist() == blip
    # median 3 counts subsampled frames: the 1-frame blip there goes (at full rate it is 2
    # frames, which a median of 3 full-rate frames would keep)
    assert postprocess(avg, "median", 3, 2, 9).tolist() == [0] * 9
    # purge and mode count full-rate frames: the blip is 2 frames long
    assert postprocess(avg, "purge", 2, 2, 9).tolist() == blip
    assert postprocess(avg, "purge", 3, 2, 9).tolist() == [0] * 9
    assert postprocess(avg, "diffact_purge", 2, 2, 9).tolist() == [0] * 9
    assert postprocess(avg, "mode", 3, 2, 9).tolist() == blip
    assert postprocess(avg, "mode", 5, 2, 9).tolist() == [0] * 9
    with pytest.raises(ValueError, match="at sample rate 1 they must agree"):
        postprocess(avg, "none", 1, 1, 9)


ORACLE_KINDS = {"purge": "diffact_purge", "median": "median", "mode": "mode", "none": "none"}


def test_the_test_time_pipeline_reproduces_diffact_exactly():
    """DiffAct's test loop on the real split-1 label sets (../shared/data/diffact_oracle): every
    case of every dataset and every kind, frame for frame."""
    oracle = pipeline_oracle()
    checked = 0
    for name, data in oracle["datasets"].items():
        rate = data["sample_rate"]
        for case in data["cases"]:
            views = [p.numpy() for p in case["offset_probs"]]
            assert len(views) == rate
            avg = average_views(views)
            for key, expected in case["outputs"].items():
                kind, value = key.split(":")
                out = postprocess(avg, ORACLE_KINDS[kind], max(int(value), 1), rate,
                                  case["full_len"])
                assert out.shape == (case["full_len"],), (name, case["video"], key)
                mismatch = int((out != expected.numpy()).sum())
                assert mismatch == 0, f"{name} {case['video']} {key}: {mismatch} frames differ"
                checked += 1
    assert checked == 27


def test_every_filter_has_one_home_and_a_new_one_is_one_table_line(monkeypatch):
    """docs/ARCHITECTURE.md's recipe: a filter is a function of (probabilities (C, T_s) or
    labels (T,), window) in one of the two tables; postprocess runs whatever the table holds."""
    from twostream_das.prediction import postprocess as module

    homes = [k for k in PostprocessKind if k in module.PROBABILITY_FILTERS]
    homes += [k for k in PostprocessKind if k in module.LABEL_FILTERS]
    assert sorted(homes) == sorted(k for k in PostprocessKind if k is not PostprocessKind.NONE)

    def last_label_everywhere(labels, window):  # a made-up label filter
        return np.full_like(labels, labels[-1])

    monkeypatch.setitem(module.LABEL_FILTERS, PostprocessKind.MODE, last_label_everywhere)
    probs = np.array([[0.9, 0.9, 0.1], [0.1, 0.1, 0.9]])  # labels 0, 0, 1
    assert module.postprocess(probs, "mode", 3).tolist() == [1, 1, 1]
    assert module.postprocess(probs, "none", 3).tolist() == [0, 0, 1]
