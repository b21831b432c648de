"""Post-processing: purge, median filter, mode filter; hand-worked values."""

import numpy as np
import pytest
from scipy.ndimage import generic_filter

from twostream_das.config import PostprocessKind
from twostream_das.postprocess import median_filter, mode_filter, postprocess, purge


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
