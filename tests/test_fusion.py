import numpy as np
import pytest
import torch

from twostream_das.fusion import check_weights, fuse, search_weights, weight_grid


def test_fuse_is_the_weighted_sum_for_arrays_and_tensors():
    rgb = np.array([[0.2, 0.9], [0.8, 0.1]])
    flow = np.array([[0.6, 0.3], [0.4, 0.7]])
    out = fuse({"rgb": rgb, "flow": flow}, {"rgb": 0.3, "flow": 0.7})
    np.testing.assert_allclose(out, [[0.48, 0.48], [0.52, 0.52]])
    batched = fuse({"rgb": torch.tensor(rgb)[None], "flow": torch.tensor(flow)[None]},
                   {"rgb": 1.0, "flow": 0.0})
    assert torch.equal(batched[0], torch.tensor(rgb))


@pytest.mark.parametrize(
    ("weights", "message"),
    [({"rgb": 1.2, "flow": 0.5}, "rgb"), ({"rgb": 0.5, "flow": -0.1}, "flow"),
     ({"rgb": 0.0, "flow": 0.0}, "all 0"), ({"rgb": 0.5}, "keys")],
)
def test_bad_weights_are_errors(weights, message):
    with pytest.raises(ValueError, match=message):
        check_weights(weights)


def test_weight_grid():
    assert weight_grid(0.5) == [
        {"rgb": 0.0, "flow": 0.5}, {"rgb": 0.0, "flow": 1.0},
        {"rgb": 0.5, "flow": 0.0}, {"rgb": 0.5, "flow": 0.5}, {"rgb": 0.5, "flow": 1.0},
        {"rgb": 1.0, "flow": 0.0}, {"rgb": 1.0, "flow": 0.5}, {"rgb": 1.0, "flow": 1.0},
    ]
    grid = weight_grid(0.1)
    assert len(grid) == 11 * 11 - 1 and {"rgb": 0.3, "flow": 0.7} in grid
    assert [w["rgb"] for w in weight_grid(0.3)][::4] == [0.0, 0.3, 0.6, 0.9]  # 1 is off-grid


def test_search_finds_the_best_and_breaks_ties_deterministically():
    found = search_weights(0.5, lambda w: -abs(w["rgb"] - 1.0) - abs(w["flow"] - 0.5))
    assert found.weights == {"rgb": 1.0, "flow": 0.5} and found.score == 0.0
    assert len(found.table) == 8
    # scaled weights tie: the most balanced, then the largest total wins
    ratio = search_weights(0.5, lambda w: float(w["rgb"] == w["flow"]))
    assert ratio.weights == {"rgb": 1.0, "flow": 1.0}
    flat = search_weights(0.5, lambda w: 0.0)
    assert flat.weights == {"rgb": 1.0, "flow": 1.0}
    weights, score = search_weights(0.5, lambda w: w["flow"] - w["rgb"])[:2]  # tuple-compatible
    assert weights == {"rgb": 0.0, "flow": 1.0} and score == 1.0
