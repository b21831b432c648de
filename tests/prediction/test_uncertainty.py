import math

import numpy as np
import pytest

from twostream_das.prediction.uncertainty import (
    auroc,
    entropy,
    expected_calibration_error,
    frame_uncertainty,
    fused_samples,
    mutual_information,
)


def test_mutual_information_hand_worked():
    # frame 0: two samples agree on (0.5, 0.5): MI 0 although each is uncertain.
    # frame 1: samples (1, 0) and (0, 1): mean (0.5, 0.5), H = log 2, each H = 0: MI = log 2.
    samples = np.array([[[0.5, 1.0], [0.5, 0.0]], [[0.5, 0.0], [0.5, 1.0]]])  # (K=2, C=2, T=2)
    np.testing.assert_allclose(mutual_information(samples), [0.0, math.log(2)], atol=1e-7)
    np.testing.assert_allclose(entropy(np.array([[0.25], [0.75]]), axis=0),
                               [-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))])


def test_fused_samples_and_frame_uncertainty():
    rgb = np.array([[[1.0], [0.0]], [[0.0], [1.0]]])  # (K=2, C=2, T=1)
    flow = np.array([[[1.0], [0.0]], [[1.0], [0.0]]])
    fused = fused_samples({"rgb": rgb, "flow": flow}, {"rgb": 0.5, "flow": 0.5})
    np.testing.assert_allclose(fused[:, :, 0], [[1.0, 0.0], [0.5, 0.5]])
    # mean (0.75, 0.25): MI = H(0.75, 0.25) - (0 + log 2) / 2
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) - math.log(2) / 2
    mi = frame_uncertainty(fused)
    np.testing.assert_allclose(mi, [expected], atol=1e-6)
    assert frame_uncertainty(fused[:1]) is None


def test_auroc_hand_worked():
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0], bool)) == 1.0
    assert auroc(np.array([0.1, 0.8, 0.9, 0.2]), np.array([1, 1, 0, 0], bool)) == 0.25
    assert auroc(np.zeros(4), np.array([1, 0, 0, 1], bool)) == 0.5  # all tied
    assert math.isnan(auroc(np.zeros(3), np.zeros(3, bool)))


def test_expected_calibration_error_hand_worked():
    # 15 bins; 0.95 and 0.97 in the last bin, both right: |1 - 0.96| * 2/4;
    # 0.3 and 0.31 in bin (0.2667, 0.3333], one right: |0.5 - 0.305| * 2/4
    conf = np.array([0.95, 0.97, 0.3, 0.31])
    correct = np.array([1, 1, 1, 0], bool)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.04 / 2 + 0.195 / 2)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1], bool)) == 0.0
