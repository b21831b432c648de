import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from _reference import pipeline_oracle, real_labels
from twostream_das.config import LossConfig
from twostream_das.data.dataset import Video, class_counts
from twostream_das.model.losses import (
    TERMS,
    boundary_loss,
    change_probability,
    class_weights_from_counts,
    cross_entropy,
    hard_targets,
    smoothing_loss,
    soft_targets,
    stream_loss,
)

LN3 = math.log(3.0)
# One video, C = 2, T = 3: probabilities [.5 .5], [.25 .75], [.75 .25]; a padded 4th frame.
LOGITS = torch.tensor([[[0.0, 0.0, LN3, 9.0], [0.0, LN3, 0.0, -9.0]]])
LABELS = torch.tensor([[0, 1, 1, -100]])
MASK = LABELS >= 0
BOUNDARY = torch.tensor([[0.0, 1.0, 0.5, 0.0]])


def test_cross_entropy_by_hand():
    targets = hard_targets(LABELS, 2)
    plain = (math.log(2) + math.log(4 / 3) + math.log(4)) / 3
    assert cross_entropy(LOGITS, targets, MASK).item() == pytest.approx(plain, rel=1e-6)
    weighted = (1 * math.log(2) + 2 * math.log(4 / 3) + 2 * math.log(4)) / 3
    got = cross_entropy(LOGITS, targets, MASK, torch.tensor([1.0, 2.0])).item()
    assert got == pytest.approx(weighted, rel=1e-6)


def test_smoothing_by_hand_with_and_without_clamp():
    squares = [math.log(2) ** 2, math.log(1.5) ** 2, LN3**2, LN3**2]  # pairs (0,1), (1,2)
    assert smoothing_loss(LOGITS, MASK, 16.0).item() == pytest.approx(sum(squares) / 4, rel=1e-6)
    clamped = [min(s, 1.0) for s in squares]
    assert smoothing_loss(LOGITS, MASK, 1.0).item() == pytest.approx(sum(clamped) / 4, rel=1e-6)


def test_smoothing_and_boundary_do_not_push_the_earlier_frame():
    logits = LOGITS[:, :, :2].clone().requires_grad_(True)
    mask = torch.ones(1, 2, dtype=torch.bool)
    (smoothing_loss(logits, mask, 16.0) + boundary_loss(logits, BOUNDARY[:, :2], mask)).backward()
    assert torch.all(logits.grad[:, :, 0] == 0) and logits.grad[:, :, 1].abs().sum() > 0


def test_boundary_by_hand():
    change = change_probability(LOGITS[:, :, :3])
    torch.testing.assert_close(change, torch.tensor([[0.5, 0.625]]))
    pair0 = math.log(2)  # target 1 (boundary at frame 1), p = 0.5
    pair1 = -(0.5 * math.log(0.625) + 0.5 * math.log(0.375))  # target 0.5 at frame 2
    got = boundary_loss(LOGITS, BOUNDARY, MASK).item()
    assert got == pytest.approx((pair0 + pair1) / 2, rel=1e-6)


def test_soft_targets_match_scipy_per_video_with_padding():
    rng = np.random.default_rng(0)
    first = np.repeat([0, 2, 1, 2], [3, 4, 2, 2])  # 11 frames
    second = rng.integers(0, 3, size=17)
    labels = torch.full((2, 17), -100)
    labels[0, :11] = torch.from_numpy(first)
    labels[1] = torch.from_numpy(second)
    mask = labels >= 0
    out = soft_targets(labels, mask, 3, 1.4)
    for b, seq in enumerate((first, second)):
        onehot = np.eye(3)[seq].T  # (C, T_b)
        ref = gaussian_filter1d(onehot, 1.4, axis=1, mode="reflect")
        np.testing.assert_allclose(out[b, :, : len(seq)].numpy(), ref, atol=1e-6)
    assert torch.all(out[0, :, 11:] == 0)
    torch.testing.assert_close(out.sum(1)[mask], torch.ones(int(mask.sum())))


def test_stream_loss_is_the_weighted_sum_and_a_mean_over_videos():
    cfg = LossConfig(soft_label_sigma=None)
    gen = torch.Generator().manual_seed(0)
    enc, dec = torch.randn(2, 2, 4, 9, generator=gen)  # two (B, C, T)
    labels = torch.randint(0, 4, (2, 9), generator=gen)
    labels[1, 5:] = -100
    boundary = torch.rand(2, 9, generator=gen)
    mask = labels >= 0
    out = stream_loss(enc, dec, labels, boundary, mask, None, cfg)
    assert set(out.terms) == set(TERMS)
    expected = sum(getattr(cfg, k) * v for k, v in out.terms.items())
    torch.testing.assert_close(out.total, expected)
    singles = [
        stream_loss(enc[b:b + 1, :, :n], dec[b:b + 1, :, :n], labels[b:b + 1, :n],
                    boundary[b:b + 1, :n], mask[b:b + 1, :n], None, cfg)
        for b, n in ((0, 9), (1, 5))
    ]
    torch.testing.assert_close(out.total, (singles[0].total + singles[1].total) / 2)


def test_soft_label_cross_entropy_weights_each_class():
    targets = torch.tensor([[[0.75], [0.25]]])
    logits = torch.tensor([[[0.0], [LN3]]])  # p = .25, .75
    mask = torch.ones(1, 1, dtype=torch.bool)
    got = cross_entropy(logits, targets, mask, torch.tensor([2.0, 1.0]))
    expected = -(2 * 0.75 * math.log(0.25) + 1 * 0.25 * math.log(0.75))
    assert got.item() == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------- class weights


def test_class_weights_hand_worked():
    # N = 12, C = 4: 12 / ((n_c + 10) * 4)
    out = class_weights_from_counts(np.array([6, 2, 0, 4]))
    np.testing.assert_allclose(out, [12 / 64, 12 / 48, 12 / 40, 12 / 56], rtol=0, atol=0)
    with pytest.raises(ValueError, match="expected"):
        class_weights_from_counts(np.array([3, -1]))


@pytest.mark.parametrize("dataset", ["gtea", "50salads", "breakfast"])
def test_class_weights_equal_diffacts_on_the_real_split1_training_labels(dataset):
    data = pipeline_oracle()["datasets"][dataset]
    labels = real_labels(dataset, list(data["train_videos"]))
    counts = class_counts(
        [Video(v, {}, y) for v, y in labels.items()], len(data["classes"])
    )
    out = class_weights_from_counts(counts)
    expected = data["class_weights"].numpy()
    assert out.dtype == np.float64 and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
