import math

import numpy as np
import pytest
import torch

from _reference import pipeline_oracle, real_labels
from twostream_das.data.temporal import (
    average_views,
    boundary_target,
    num_view_frames,
    restore_full_rate,
    subsample,
    view_boundary_target,
)


def _gauss(k: int, sigma: float) -> float:
    """Unnormalised Gaussian weight at distance k (the normalisation cancels in the target)."""
    return math.exp(-(k**2) / (2 * sigma**2))


# ----------------------------------------------------------------------------- boundaries


def test_boundary_target_by_hand():
    # Change between frames 9 and 10 of 20 (far from the ends): raw target 1 at 9 and 10; the
    # smoothed value at frame t is w(t - 9) + w(t - 10), divided by the pair's peak w(0) + w(1).
    w = [_gauss(k, 1.0) for k in range(6)]
    peak = w[0] + w[1]
    out = boundary_target(np.array([0] * 10 + [1] * 10), sigma=1.0)
    assert out.dtype == np.float32
    expected = [(w[1] + w[2]) / peak, 1.0, 1.0, (w[1] + w[2]) / peak, (w[2] + w[3]) / peak]
    np.testing.assert_allclose(out[8:13], expected, rtol=1e-6)
    # near an end the Gaussian reflects (scipy's and DiffAct's default): a change between
    # frames 0 and 1 gets the mirrored frame -1 (= frame 0) as well -> capped at 1 there
    near = boundary_target(np.array([0] + [1] * 9), sigma=1.0)
    assert near[0] == near[1] == 1.0
    # frame 2: the pair at 0, 1 and its mirror at -1, -2
    np.testing.assert_allclose(near[2], (w[1] + w[2] + w[3] + w[4]) / peak, rtol=1e-6)


def test_boundary_target_without_smoothing_marks_both_frames_of_each_change():
    out = boundary_target(np.array([3, 3, 1, 1, 1, 2]), sigma=0)
    assert out.tolist() == [0, 1, 1, 0, 1, 1]


@pytest.mark.parametrize("labels", [[4] * 9, [0], []])
def test_single_segment_has_no_boundary(labels):
    out = boundary_target(np.array(labels, dtype=np.int64), sigma=3.0)
    assert out.shape == (len(labels),) and not out.any()


def test_close_boundaries_are_capped_at_one_and_isolated_ones_peak_at_one():
    out = boundary_target(np.array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2]), sigma=2.0)
    assert out.max() == pytest.approx(1.0)
    assert out[0] == out[1] == out[2] == pytest.approx(1.0)  # two changes 1 frame apart: capped
    assert out[13] == pytest.approx(1.0) and out[14] == pytest.approx(1.0)  # isolated change
    assert 0 < out[8] < 0.05


def test_boundary_target_matches_a_direct_convolution():
    rng = np.random.default_rng(0)
    labels = np.repeat(rng.integers(0, 4, 12), rng.integers(3, 15, 12))
    sigma = 2.5
    raw = np.zeros(len(labels))
    change = np.flatnonzero(np.diff(labels)) + 1
    raw[change] = raw[change - 1] = 1.0
    radius = int(4 * sigma + 0.5)
    kernel = np.array([_gauss(k, sigma) for k in range(-radius, radius + 1)])
    kernel /= kernel.sum()
    smooth = np.convolve(np.pad(raw, radius, mode="symmetric"), kernel, mode="valid")
    peak = kernel[radius] + kernel[radius + 1]
    capped = np.minimum(smooth, peak)
    np.testing.assert_allclose(boundary_target(labels, sigma), capped / capped.max(), atol=1e-6)


def test_view_boundary_target_is_the_full_rate_target_subsampled_and_renormalised():
    full = boundary_target(np.array([0] * 20 + [1] * 12), sigma=4.0, dtype=np.float64)
    for offset in range(3):
        view = view_boundary_target(full, 3, offset)
        np.testing.assert_array_equal(view, full[offset::3] / full[offset::3].max())
        assert view.max() == 1.0
    assert view_boundary_target(np.zeros(7), 2, 1).tolist() == [0.0] * 3


@pytest.mark.parametrize("dataset", ["gtea", "50salads", "breakfast"])
def test_boundary_targets_equal_diffacts_per_offset_on_real_labels(dataset):
    """Equal to DiffAct's targets for every offset; at 50Salads' sigma 20 (161 taps) about 1.5%
    of the values differ in the last bit of float64 (the Gaussian's summation order), so the
    comparison allows 1e-15 (4.5 units in the last place at 1.0)."""
    data = pipeline_oracle()["datasets"][dataset]
    rate, sigma = data["sample_rate"], data["boundary_smooth"]
    labels = real_labels(dataset, list(data["boundary_targets"]))
    for video, views in data["boundary_targets"].items():
        full = boundary_target(labels[video], sigma, dtype=np.float64)
        assert len(views) == rate
        for offset, expected in enumerate(views):
            out = view_boundary_target(full, rate, offset)
            assert out.shape == expected.shape and out.max() == 1.0
            np.testing.assert_allclose(
                out, expected.numpy(), rtol=0, atol=1e-15, err_msg=f"{video} {offset}"
            )


# ----------------------------------------------------------------------------- sample rate


def test_subsample_numpy_and_torch():
    x = np.arange(10)
    assert subsample(x, 3, 1).tolist() == [1, 4, 7]
    assert subsample(x, 1, 0).tolist() == list(range(10))
    feats = torch.arange(20).reshape(2, 10)  # (D, T)
    assert subsample(feats, 4, 3).tolist() == [[3, 7], [13, 17]]
    with pytest.raises(ValueError, match="offset must be in"):
        subsample(x, 3, 3)
    with pytest.raises(ValueError, match="sample rate must be >= 1"):
        subsample(x, 0, 0)


def test_num_view_frames():
    assert [num_view_frames(10, 3, o) for o in range(3)] == [4, 3, 3]
    assert num_view_frames(2, 4, 3) == 0


def test_average_views_crops_to_the_shortest_and_keeps_the_dtype():
    views = [np.array([[1.0, 2.0, 3.0]]), np.array([[3.0, 4.0]]), np.array([[5.0, 0.0, 9.0]])]
    out = average_views(views)
    assert out.tolist() == [[3.0, 2.0]]
    assert average_views([np.ones((2, 4), np.float32)]).dtype == np.float32
    assert views[0].tolist() == [[1.0, 2.0, 3.0]]  # inputs untouched
    with pytest.raises(ValueError, match="no offset views"):
        average_views([])


def test_restore_full_rate_by_hand():
    # r = 4, T = 10: crop length floor(10 / 4) = 2, ticks at frames 2 and 6 (left offset 4 // 2,
    # right offset 3 // 2 = 1: DiffAct's arange(2, 10 - 1, 4)). Frame 4 is equally near both
    # ticks -> the earlier; frames before 2 / after 6 take the end values.
    x = np.array([7, 9])
    assert restore_full_rate(x, 4, 10).tolist() == [7, 7, 7, 7, 7, 9, 9, 9, 9, 9]
    # r = 3, T = 7: ticks at 1 and 4 (arange(1, 7 - 1, 3)); no ties at odd rates.
    probs = np.array([[0.1, 0.2], [0.9, 0.8]])
    assert restore_full_rate(probs, 3, 7).tolist() == [[0.1] * 3 + [0.2] * 4, [0.9] * 3 + [0.8] * 4]
    # rate 1 is the identity, also for tensors
    t = torch.arange(5)
    assert restore_full_rate(t, 1, 5) is t
    # r = 2, T = 4: ticks at 1 and 3; frame 2 is a tie -> the earlier
    assert restore_full_rate(torch.tensor([1, 2]), 2, 4).tolist() == [1, 1, 1, 2]


@pytest.mark.parametrize("num_frames", [8, 13, 17, 64])
@pytest.mark.parametrize("rate", [2, 3, 4, 8])
def test_restore_full_rate_is_diffacts_nearest_neighbour(num_frames, rate):
    """The rule written out as DiffAct states it: ticks arange(r // 2, T - (r - 1) // 2, r), the
    nearest tick (earlier on ties), the ends held."""
    from scipy.interpolate import interp1d

    length = min(num_view_frames(num_frames, rate, o) for o in range(rate))
    ticks = np.arange(rate // 2, num_frames - (rate - 1) // 2, rate)
    assert len(ticks) == length
    x = np.random.default_rng(rate).normal(size=length)
    expected = np.empty(num_frames)
    expected[: ticks[0]] = x[0]
    expected[ticks[-1] + 1 :] = x[-1]
    if length > 1:
        inner = np.arange(ticks[0], ticks[-1] + 1)
        expected[ticks[0] : ticks[-1] + 1] = interp1d(ticks, x, kind="nearest")(inner)
    else:
        expected[ticks[0]] = x[0]
    np.testing.assert_array_equal(restore_full_rate(x, rate, num_frames), expected)


def test_restore_full_rate_of_a_video_shorter_than_the_rate():
    assert restore_full_rate(np.array([5]), 8, 3).tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match="no frames"):
        restore_full_rate(np.zeros(0), 2, 4)
