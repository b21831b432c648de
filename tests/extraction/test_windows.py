import numpy as np
import pytest

from twostream_das.extraction.windows import build_window, iter_window_batches, window_indices


def frames_valued(num: int) -> list[np.ndarray]:
    """Frame t is a (1, 2, 2) array filled with t + 1, so padding (0) is recognisable."""
    return [np.full((1, 2, 2), t + 1, np.float32) for t in range(num)]


def window_values(windows: np.ndarray) -> np.ndarray:
    """(B, 1, window, 2, 2) -> (B, window): the value of each window position."""
    return windows[:, 0, :, 0, 0]


def test_window_indices_are_centred():
    assert list(window_indices(0, 5)) == [-2, -1, 0, 1, 2]
    assert list(window_indices(7, 21)) == list(range(-3, 18))
    with pytest.raises(ValueError):
        window_indices(0, 4)


@pytest.mark.parametrize("num,window,batch", [(7, 5, 3), (1, 5, 2), (5, 21, 2), (12, 3, 12)])
def test_streamed_batches_equal_direct_windows(num, window, batch):
    frames = frames_valued(num)
    batches = list(iter_window_batches(iter(frames), window, batch))
    assert [len(b) for b in batches[:-1]] == [batch] * (len(batches) - 1)
    streamed = np.concatenate(batches)
    assert streamed.shape == (num, 1, window, 2, 2)
    for centre in range(num):
        np.testing.assert_array_equal(streamed[centre], build_window(frames, centre, window))


def test_ends_are_zero_padded_hand_worked():
    values = window_values(np.concatenate(list(iter_window_batches(frames_valued(4), 5, 8))))
    np.testing.assert_array_equal(values, [
        [0, 0, 1, 2, 3],  # frame 0: two padding frames before it
        [0, 1, 2, 3, 4],
        [1, 2, 3, 4, 0],
        [2, 3, 4, 0, 0],  # frame 3 (last): two padding frames after it
    ])


def test_no_frames_no_batches():
    assert list(iter_window_batches(iter([]), 21, 4)) == []
