import math

import numpy as np
import pytest
import torch

from twostream_das.data.temporal import (
    boundary_target,
    nearest_view_index,
    num_view_frames,
    subsample,
    upsample,
)


def _gauss(k: int, sigma: float) -> float:
    """Unnormalised Gaussian weight at distance k (the normalisation cancels in the target)."""
    return math.exp(-(k**2) / (2 * sigma**2))


# ----------------------------------------------------------------------------- boundaries


def test_boundary_target_by_hand():
    # Change between frames 1 and 2: raw target [0, 1, 1, 0, 0]; smoothed value at frame t is
    # w(t - 1) + w(t - 2), divided by the isolated-pair peak w(0) + w(1).
    w = [_gauss(k, 1.0) for k in range(4)]
    peak = w[0] + w[1]
    expected = [(w[1] + w[2]) / peak, 1.0, 1.0, (w[1] + w[2]) / peak, (w[2] + w[3]) / peak]
    out = boundary_target(np.array([0, 0, 1, 1, 1]), sigma=1.0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6)


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
    smooth = np.convolve(raw, kernel, mode="same")
    peak = kernel[radius] + kernel[radius + 1]
    expected = np.minimum(smooth / peak, 1)
    np.testing.assert_allclose(boundary_target(labels, sigma), expected, atol=1e-6)


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


def test_upsample_takes_the_nearest_view_frame_by_hand():
    # View frames of offset 1 at rate 3 sit at full frames 1, 4, 7.
    x = np.array([[10.0, 20.0, 30.0], [1.0, 2.0, 3.0]])  # (C, T_s)
    out = upsample(x, 3, 1, 9)
    assert out[0].tolist() == [10, 10, 10, 20, 20, 20, 30, 30, 30]
    assert out[1].tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    # Rate 2: frame 1 is equally near view frames 0 and 1 -> the earlier one.
    assert upsample(np.array([[1, 2]]), 2, 0, 4).tolist() == [[1, 1, 2, 2]]
    # Offset 3 at rate 4 in 9 frames: view frames at 3 and 7; frame 5 (tie) -> the earlier.
    assert nearest_view_index(9, 4, 3).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("num_frames", [7, 8, 13])
@pytest.mark.parametrize("rate", [1, 2, 3, 4])
def test_subsample_upsample_round_trip(num_frames, rate):
    x = np.random.default_rng(num_frames).normal(size=(3, num_frames))
    for offset in range(rate):
        view = subsample(x, rate, offset)
        full = upsample(view, rate, offset, num_frames)
        assert full.shape == (3, num_frames)
        np.testing.assert_array_equal(subsample(full, rate, offset), view)
        # every full frame takes a view frame at most rate // 2 frames away (ends: clamped)
        index = nearest_view_index(num_frames, rate, offset)
        inside = (np.arange(num_frames) >= offset) & (
            np.arange(num_frames) <= offset + (view.shape[1] - 1) * rate
        )
        dist = np.abs(offset + index * rate - np.arange(num_frames))
        assert (dist[inside] <= rate // 2).all()
    if rate == 1:
        np.testing.assert_array_equal(upsample(x, 1, 0, num_frames), x)


def test_upsample_checks_the_view_length():
    with pytest.raises(ValueError, match="has 4 frames, got 3"):
        upsample(np.zeros((2, 3)), 2, 0, 8)
