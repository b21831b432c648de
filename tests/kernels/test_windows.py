import pytest
import torch

from twostream_das.kernels import frame_mask, window_key_mask, window_views


def test_window_views_shift_by_multiples_of_dilation():
    x = torch.arange(1.0, 8.0).view(1, 1, 7)  # 1 .. 7
    views = window_views(x, 3, 2)  # (1, 1, 3, 7)
    assert views.shape == (1, 1, 3, 7)
    assert views[0, 0, 0].tolist() == [0, 0, 1, 2, 3, 4, 5]  # t - 2
    assert views[0, 0, 1].tolist() == [1, 2, 3, 4, 5, 6, 7]  # t
    assert views[0, 0, 2].tolist() == [3, 4, 5, 6, 7, 0, 0]  # t + 2


def test_key_mask_excludes_ends_and_padding():
    valid = torch.tensor([[True, True, True, False]])
    mask = window_key_mask(valid, 3, 1)  # (1, 3, 4)
    assert mask[0].tolist() == [
        [False, True, True, True],  # t - 1
        [True, True, True, False],  # t
        [True, True, False, False],  # t + 1
    ]


def test_frame_mask_forms():
    fm = frame_mask(torch.tensor([[True, True, False], [True, True, True]]))
    assert fm.weight.shape == (2, 1, 3) and fm.count.flatten().tolist() == [2.0, 3.0]
    assert not fm.full
    assert frame_mask(torch.ones(2, 3, dtype=torch.bool)).full
    with pytest.raises(ValueError, match="bool"):
        frame_mask(torch.ones(2, 3))
