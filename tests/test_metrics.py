"""Metrics: hand-worked cases, the reference rules, and Lea et al. 2017's published predictions."""


import numpy as np
import pytest

from _shared import require_shared
from twostream_das.config import Average
from twostream_das.errors import DataError
from twostream_das.metrics import (
    METRIC_KEYS,
    Counts,
    Segment,
    class_segment_counts,
    confusion_matrix,
    edit_score,
    evaluate,
    f1_score,
    frame_accuracy,
    levenshtein,
    per_class_f1,
    score,
    score_video,
    segment_counts,
    segments,
)


def seq(text: str) -> np.ndarray:
    """'aab_' -> array(['a', 'a', 'b', '_']): one character per frame; '_' is background."""
    return np.array(list(text))


BG = ("_",)


# ----------------------------------------------------------------------------- segments


def test_segments_cover_every_frame_and_the_last_segment_ends_at_T():
    assert segments([3, 3, 1, 1, 1, 2]) == [Segment(3, 0, 2), Segment(1, 2, 5), Segment(2, 5, 6)]
    assert segments(seq("abb")) == [("a", 0, 1), ("b", 1, 3)]
    assert segments([7]) == [(7, 0, 1)]
    assert segments([]) == []


def test_segments_reject_a_2d_array():
    with pytest.raises(DataError, match=r"\(2, 2\)"):
        segments(np.zeros((2, 2)))


# ----------------------------------------------------------------------------- accuracy, edit


def test_frame_accuracy_counts_background_frames():
    # 3 of 4 frames right, one of them background: 75 %.
    assert frame_accuracy(seq("_aab"), seq("_abb")) == 75.0


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("abc", "", 3), ("kitten", "sitting", 3), ("abcd", "acbd", 2), ("ab", "ba", 2)],
)
def test_levenshtein(a, b, distance):
    assert levenshtein(list(a), list(b)) == distance
    assert levenshtein(list(b), list(a)) == distance


def test_levenshtein_matches_a_plain_dynamic_programme():
    def plain(a, b):
        d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                substitute = d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, substitute)
        return d[-1][-1]

    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.integers(0, 3, rng.integers(0, 9)).tolist()
        b = rng.integers(0, 3, rng.integers(0, 9)).tolist()
        assert levenshtein(a, b) == plain(a, b)


def test_edit_hand_worked():
    # gt segments  a b c ; pred segments a c : one deletion, max(3, 2) = 3 -> (1 - 1/3) * 100.
    assert edit_score(seq("aabbcc"), seq("aaaccc"), BG) == pytest.approx(200 / 3)
    # Oversegmentation: gt a b, pred a b a b -> 2 insertions / 4 -> 50.
    assert edit_score(seq("aabb"), seq("abab"), BG) == pytest.approx(50.0)


def test_edit_drops_background_segments_first():
    # Without background: gt a _ b, pred a b -> 1/3 wrong. With '_' as background both are a b: 100.
    gt, pred = seq("aa__bb"), seq("aaabbb")
    assert edit_score(gt, pred, background=()) == pytest.approx(200 / 3)
    assert edit_score(gt, pred, background=BG) == 100.0
    # Dropping background can leave two 'a' segments side by side: they stay two (a a vs a).
    assert edit_score(seq("aaaaaa"), seq("aa__aa"), BG) == pytest.approx(50.0)


def test_edit_of_empty_sequences():
    # Both only background: defined as 100. Prediction all background, gt a b: 2/2 wrong -> 0.
    assert edit_score(seq("__"), seq("__"), BG) == 100.0
    assert edit_score(seq("ab"), seq("__"), BG) == 0.0


def test_default_background_is_the_class_named_background():
    gt = np.array(["background", "x", "x"])
    pred = np.array(["x", "x", "x"])
    assert edit_score(gt, pred) == 100.0


# ----------------------------------------------------------------------------- F1


def test_f1_hand_worked_single_video():
    # gt   : a a a a b b b b _ _      segments a[0,4) b[4,8)            ('_' background)
    # pred : a a b b b b b b b c      segments a[0,2) b[2,9) c[9,10)
    # a: IoU 2/4 = 0.50 ; b: inter [4,8) = 4, union [2,9) = 7 -> 0.571 ; c: no gt of its label.
    # @0.10 and @0.25 and @0.50: TP 2 (a, b), FP 1 (c), FN 0 -> P 2/3, R 1, F1 = 0.8
    gt, pred = seq("aaaabbbb__"), seq("aabbbbbbbc")
    for k in (0.10, 0.25, 0.50):
        assert segment_counts(gt, pred, k, BG) == Counts(2, 1, 0)
    # @0.60 neither a nor b is a hit: TP 0, FP 3, FN 2 -> F1 0.
    assert segment_counts(gt, pred, 0.60, BG) == Counts(0, 3, 2)
    assert f1_score(Counts(2, 1, 0)) == pytest.approx(80.0)
    s = score_video(gt, pred, BG)
    assert s.f1 == pytest.approx((80.0, 80.0, 80.0))
    assert s.acc == pytest.approx(60.0)  # frames 2, 3 (a vs b), 8 (_ vs b), 9 (_ vs c) wrong


def test_per_class_counts_and_f1_hand_worked_over_two_videos():
    # video 1 as in the test above: a[0,2) IoU 0.5 and b[2,9) IoU 0.571 are hits up to 0.5, c has
    # no ground truth of its label. At 0.6 both miss: a and b each 1 FP and 1 FN.
    gt1, pred1 = seq("aaaabbbb__"), seq("aabbbbbbbc")
    assert class_segment_counts(gt1, pred1, 0.5, BG) == {
        "a": Counts(1, 0, 0), "b": Counts(1, 0, 0), "c": Counts(0, 1, 0)
    }
    at_60 = class_segment_counts(gt1, pred1, 0.6, BG)
    assert at_60 == {"a": Counts(0, 1, 1), "b": Counts(0, 1, 1), "c": Counts(0, 1, 0)}
    assert sum(at_60.values(), Counts(0, 0, 0)) == segment_counts(gt1, pred1, 0.6, BG)
    # video 2: gt a[0,2) b[2,3); pred b[0,3): IoU with b 1/3 -> a hit at 0.10 and 0.25, an FP
    # at 0.50; a is never predicted: FN 1.
    gt2, pred2 = seq("aab"), seq("bbb")
    f1 = per_class_f1([gt1, gt2], [pred1, pred2], ["_", "a", "b", "c"], BG)
    assert f1["_"] is None  # background has no F1
    # a pooled: TP 1, FP 0, FN 1 at every threshold -> P 1, R 1/2, F1 2/3
    assert f1["a"] == pytest.approx({"f1@10": 200 / 3, "f1@25": 200 / 3, "f1@50": 200 / 3})
    # b: TP 2 at 0.10/0.25 -> 100; at 0.50 TP 1 FP 1 FN 1 -> P = R = 1/2 -> 50
    assert f1["b"] == pytest.approx({"f1@10": 100.0, "f1@25": 100.0, "f1@50": 50.0})
    assert f1["c"] == {"f1@10": 0.0, "f1@25": 0.0, "f1@50": 0.0}
    with pytest.raises(DataError, match="'c' is not one of the classes"):
        per_class_f1([gt1], [pred1], ["_", "a", "b"], BG)


def test_confusion_matrix_hand_worked():
    # ids: 0 background, 1 a, 2 b, 3 c; the two videos of the test above.
    ids = {"_": 0, "a": 1, "b": 2, "c": 3}
    as_ids = lambda text: np.array([ids[c] for c in text])  # noqa: E731
    gts = [as_ids("aaaabbbb__"), as_ids("aab")]
    preds = [as_ids("aabbbbbbbc"), as_ids("bbb")]
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 2] = expected[0, 3] = 1  # background frames 8 and 9 predicted b and c
    expected[1, 1], expected[1, 2] = 2, 2 + 2  # a: two right; two wrong in each video
    expected[2, 2] = 4 + 1
    np.testing.assert_array_equal(confusion_matrix(gts, preds, 4), expected)
    assert confusion_matrix(gts, preds, 4).sum() == 13
    with pytest.raises(DataError, match="class ids 0..2"):
        confusion_matrix(gts, preds, 3)


def test_iou_exactly_at_the_threshold_is_a_hit():
    # gt a[0,4) ; pred a[0,1) then '_' : IoU 1/4 = 0.25 exactly -> hit at 0.25, miss at 0.5.
    gt, pred = seq("aaaa"), seq("a___")
    assert segment_counts(gt, pred, 0.25, BG) == Counts(1, 0, 0)
    assert segment_counts(gt, pred, 0.50, BG) == Counts(0, 1, 1)
    # 1/10 = 0.1 exactly: a[0,10) vs a[9,10).
    assert segment_counts(seq("a" * 10), seq("_" * 9 + "a"), 0.10, BG) == Counts(1, 0, 0)


def test_the_last_segment_counts_with_its_full_length():
    # gt b[2,4) is the last segment; pred b[3,4) (one frame, also last): IoU 1/2 = 0.5 -> a hit
    # at 0.5. (ASFormer/DiffAct end the last segment at T - 1, which gives IoU 0/1 here.)
    gt, pred = seq("aabb"), seq("aaab")
    assert segment_counts(gt, pred, 0.50, BG) == Counts(2, 0, 0)


def test_a_single_frame_segment():
    # gt a a a a ; pred a a c a : segments a[0,2) c[2,3) a[3,4).
    # a[0,2): IoU 2/4 = 0.5 -> TP; c: no gt c -> FP; a[3,4): best gt is a (already matched) -> FP.
    # TP 1, FP 2, FN 0 -> P 1/3, R 1, F1 = 2 * (1/3) / (4/3) = 0.5.
    gt, pred = seq("aaaa"), seq("aaca")
    assert segment_counts(gt, pred, 0.10, BG) == Counts(1, 2, 0)
    assert f1_score(segment_counts(gt, pred, 0.10, BG)) == pytest.approx(50.0)
    assert edit_score(gt, pred, BG) == pytest.approx(100 / 3)  # a vs a c a: 2 insertions / 3


def test_background_segments_are_ignored_on_both_sides():
    # gt _ _ a a _ _ ; pred _ a a a a _ ; background never counts as TP, FP or FN.
    # a: inter [2,4) = 2, union [1,5) = 4 -> 0.5.
    gt, pred = seq("__aa__"), seq("_aaaa_")
    assert segment_counts(gt, pred, 0.50, BG) == Counts(1, 0, 0)
    # Without a background set, '_' segments count: pred _[0,1) vs gt _[0,2) IoU 0.5, pred _[5,6)
    # vs gt _[4,6) IoU 0.5 -> 3 TP at 0.5.
    assert segment_counts(gt, pred, 0.50, ()) == Counts(3, 0, 0)


def test_empty_prediction():
    # Prediction all background: no predicted segments -> TP 0, FP 0, FN 2 -> F1 0; Edit 0.
    gt, pred = seq("aabb"), seq("____")
    assert segment_counts(gt, pred, 0.10, BG) == Counts(0, 0, 2)
    assert score_video(gt, pred, BG).f1 == (0.0, 0.0, 0.0)
    # Ground truth all background, prediction has a segment: FP 1 (no crash on an empty gt).
    assert segment_counts(seq("____"), seq("_aa_"), 0.10, BG) == Counts(0, 1, 0)


def test_zero_over_zero_f1_is_zero_as_in_the_reference():
    # Nothing but background on either side: precision and recall are 0/0 -> F1 0 (Lea's
    # nan_to_num), while Edit is 100.
    s = score_video(seq("___"), seq("___"), BG)
    assert s.f1 == (0.0, 0.0, 0.0) and s.edit == 100.0 and s.acc == 100.0


def test_a_taken_best_match_is_a_false_positive_as_in_the_reference():
    # gt  : a a a a a a a a a a _ a a a a a a a a a a    a[0,10), a[11,21)
    # pred: a a a a a a b a a a a a a _ _ _ _ _ _ _ _    a[0,6), b[6,7), a[7,13)
    # a[0,6) -> gt a[0,10) IoU 0.6, TP. a[7,13): IoU with a[0,10) = 3/13 = 0.23, with a[11,21)
    # = 2/14 = 0.14; the best (a[0,10)) is taken -> FP, although a[11,21) would pass 0.1.
    gt = seq("a" * 10 + "_" + "a" * 10)
    pred = seq("a" * 6 + "b" + "a" * 6 + "_" * 8)
    assert segment_counts(gt, pred, 0.10, BG) == Counts(1, 2, 1)


def test_labels_may_be_ids_or_names():
    ids_gt, ids_pred = np.array([0, 1, 1, 2, 2]), np.array([0, 1, 2, 2, 2])
    names = np.array(["_", "a", "b"])
    by_id = score([ids_gt], [ids_pred], background=[0])
    by_name = score([names[ids_gt]], [names[ids_pred]], background=["_"])
    assert by_id == by_name


def test_f1_agrees_with_a_direct_port_of_the_reference_rule_on_random_sequences():
    def reference(gt, pred, overlap, bg):
        def segs(x):
            out, start = [], 0
            for t in range(1, len(x) + 1):
                if t == len(x) or x[t] != x[start]:
                    if x[start] not in bg:
                        out.append((x[start], start, t))
                    start = t
            return out

        y, p = segs(list(gt)), segs(list(pred))
        hits, tp, fp = [False] * len(y), 0, 0
        for lab, s, e in p:
            ious = [
                (min(e, ye) - max(s, ys)) / (max(e, ye) - min(s, ys)) if yl == lab else 0.0
                for yl, ys, ye in y
            ]
            j = int(np.argmax(ious)) if ious else -1
            if j >= 0 and ious[j] >= overlap and not hits[j]:
                tp, hits[j] = tp + 1, True
            else:
                fp += 1
        return Counts(tp, fp, len(y) - sum(hits))

    rng = np.random.default_rng(1)
    for _ in range(300):
        t = int(rng.integers(1, 30))
        gt = np.repeat(rng.integers(0, 4, t), rng.integers(1, 4, t))
        pred = gt.copy()
        flip = rng.random(gt.size) < 0.2
        pred[flip] = rng.integers(0, 4, flip.sum())
        for k in (0.1, 0.25, 0.5):
            assert segment_counts(gt, pred, k, (0,)) == reference(gt, pred, k, {0})


# ----------------------------------------------------------------------------- aggregation


def two_videos():
    # Video 1 (4 frames): gt a a b b, pred a a b b -> acc 4/4, edit 100, TP 2 FP 0 FN 0, F1 100.
    # Video 2 (6 frames): gt a a a b b b, pred b b b b b b -> acc 3/6, edit 50 (a b vs b),
    #   b[0,6) vs gt b[3,6): IoU 3/6 = 0.5 -> TP at all three thresholds; FN 1 (a). P 1, R 1/2,
    #   F1 = 2/3.
    gts = [seq("aabb"), seq("aaabbb")]
    preds = [seq("aabb"), seq("bbbbbb")]
    return gts, preds


def test_pooled_hand_worked():
    # Pooled: acc 7/10 = 70; edit (100 + 50)/2 = 75; TP 3 FP 0 FN 1 -> P 1, R 3/4, F1 6/7.
    gts, preds = two_videos()
    result = score(gts, preds, BG, Average.POOLED)
    assert list(result) == list(METRIC_KEYS)
    assert result["acc"] == pytest.approx(70.0)
    assert result["edit"] == pytest.approx(75.0)
    for key in ("f1@10", "f1@25", "f1@50"):
        assert result[key] == pytest.approx(600 / 7)


def test_per_video_hand_worked():
    # Per video: acc (100 + 50)/2 = 75; edit 75; F1 (100 + 66.67)/2 = 83.33.
    gts, preds = two_videos()
    result = score(gts, preds, BG, "per-video")
    assert result["acc"] == pytest.approx(75.0)
    assert result["edit"] == pytest.approx(75.0)
    assert result["f1@50"] == pytest.approx(250 / 3)


def test_evaluate_names_the_video_with_a_length_mismatch():
    with pytest.raises(DataError, match=r"clip_7: prediction has 3 frames, ground truth 4"):
        evaluate([seq("aabb")], [seq("aab")], BG, names=["clip_7"])
    with pytest.raises(DataError, match="2 predictions for 1"):
        score([seq("ab")], [seq("ab"), seq("ab")])
    with pytest.raises(DataError, match="no videos"):
        score([], [])
    with pytest.raises(DataError, match="both class ids or both class names"):
        score([np.array([0, 1])], [seq("ab")])


# ----------------------------------------------------------------------------- Lea et al. 2017


LEA_50SALADS_MID = "data/lea2017_tcn_predictions/50Salads_mid_mid_video_ED-TCN_L2_C15"
# The published ED-TCN row (Lea et al., CVPR 2017, 50Salads mid): F1@{10,25,50}, Edit, Acc, and
# the same predictions under the pooled convention (see ../shared/data/PROVENANCE.md).
LEA_PUBLISHED = {
    Average.PER_VIDEO: {"f1@10": 68.0, "f1@25": 63.9, "f1@50": 52.6, "edit": 59.8, "acc": 64.7},
    Average.POOLED: {"f1@10": 67.2, "f1@25": 63.1, "f1@50": 51.9, "edit": 59.8, "acc": 64.3},
}


@pytest.mark.parametrize("average", list(LEA_PUBLISHED))
def test_lea2017_published_50salads_mid_ed_tcn(average):
    folder = require_shared(LEA_50SALADS_MID)
    from scipy.io import loadmat

    per_split = []
    for split in range(1, 6):
        mat = loadmat(folder / f"{split}.mat")
        preds = [np.asarray(p).reshape(-1).astype(np.int64) for p in mat["P"].ravel()]
        gts = [np.asarray(y).reshape(-1).astype(np.int64) for y in mat["Y"].ravel()]
        per_split.append(score(gts, preds, background=[0], average=average))
    for key, published in LEA_PUBLISHED[average].items():
        mean = float(np.mean([s[key] for s in per_split]))
        assert mean == pytest.approx(published, abs=0.05), key
