import pytest
import torch

from twostream_das.extraction.i3d import (
    FEATURE_DIM,
    InceptionI3d,
    MaxPool3dSame,
    pad_same,
    same_padding,
)


@pytest.mark.parametrize("size,kernel,stride,expected", [
    (224, 7, 2, (2, 3)),  # Conv3d_1a on 224 px: 5 pixels, the odd one after (TF), not (3, 3)
    (21, 7, 2, (3, 3)),  # Conv3d_1a on a 21-frame window
    (112, 3, 2, (0, 1)),  # MaxPool3d_2a: one pixel, after
    (11, 3, 2, (1, 1)),
    (6, 2, 2, (0, 0)),  # MaxPool3d_5a_2x2 on an even size
    (3, 2, 2, (0, 1)),
    (5, 1, 1, (0, 0)),
    (1, 3, 1, (1, 1)),
])
def test_same_padding_hand_worked(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_pad_same_puts_the_odd_pixel_at_the_end():
    x = torch.ones(1, 1, 3, 4, 5)
    y = pad_same(x, (1, 3, 3), (1, 2, 2))  # T: 0; H 4 -> (0, 1); W 5 -> (1, 1)
    assert y.shape == (1, 1, 3, 5, 7)
    assert y[0, 0, :, -1].sum() == 0 and y[0, 0, :, 0].sum() > 0  # last row padded, first not
    assert y[0, 0, :, :, 0].sum() == 0 and y[0, 0, :, :, -1].sum() == 0


def test_max_pool_padding_never_wins():
    x = -torch.arange(1.0, 17.0).reshape(1, 1, 1, 4, 4)  # all negative: x[r, c] = -(4r + c + 1)
    y = MaxPool3dSame((1, 3, 3), (1, 2, 2))(x)  # SAME on 4: pad (0, 1), windows {0,1,2}, {2,3,pad}
    assert y.shape == (1, 1, 1, 2, 2)
    # max over rows x cols: {0-2}x{0-2} -> -1, {0-2}x{2,3} -> -3, {2,3}x{0-2} -> -9, {2,3}^2 -> -11
    # (zero padding, PyTorch's default, would give 0 for the last three)
    assert y.flatten().tolist() == [-1.0, -3.0, -9.0, -11.0]


def test_feature_shapes_for_rgb_and_flow(i3d_models):
    with torch.inference_mode():
        rgb = i3d_models["i3d_rgb"](torch.rand(2, 3, 21, 32, 32) * 2 - 1)
        flow = i3d_models["i3d_flow"](torch.rand(3, 2, 21, 32, 32) * 2 - 1)
        m5c = i3d_models["i3d_rgb"].mixed_5c(torch.zeros(1, 3, 21, 64, 96))
    assert rgb.shape == (2, FEATURE_DIM) and flow.shape == (3, FEATURE_DIM)
    assert m5c.shape == (1, 1024, 3, 2, 3)  # ceil(21/8), ceil(64/32), ceil(96/32)
    assert torch.isfinite(rgb).all()


def test_deterministic_and_batch_independent(i3d_models):
    model = i3d_models["i3d_rgb"]
    clips = torch.rand(3, 3, 9, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        batched = model(clips)
        again = model(clips)
        alone = torch.cat([model(clips[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, again, rtol=0, atol=0)
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-5)


def test_logits_need_a_head():
    with pytest.raises(RuntimeError, match="Logits head"):
        InceptionI3d(3).logits(torch.zeros(1, 3, 16, 224, 224))


def test_end_points_in_deepmind_order():
    names = InceptionI3d(3).end_points
    assert names[0] == "Conv3d_1a_7x7" and names[-1] == "Mixed_5c" and len(names) == 16
    assert names.index("MaxPool3d_4a_3x3") == names.index("Mixed_4b") - 1
