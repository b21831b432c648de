import numpy as np
import pytest
import torch

from twostream_das.config import FusionInput, FusionRule, load_config
from twostream_das.errors import ConfigError
from twostream_das.prediction.fusion import (
    FusionMethod,
    fit_temperature,
    fuse,
    search_weights,
    temper,
    weight_grid,
)


def test_fuse_is_the_weighted_sum_for_arrays_and_tensors():
    rgb = np.array([[0.2, 0.9], [0.8, 0.1]])
    flow = np.array([[0.6, 0.3], [0.4, 0.7]])
    out = fuse({"rgb": rgb, "flow": flow}, {"rgb": 0.3, "flow": 0.7})
    np.testing.assert_allclose(out, [[0.48, 0.48], [0.52, 0.52]])
    batched = fuse({"rgb": torch.tensor(rgb)[None], "flow": torch.tensor(flow)[None]},
                   {"rgb": 1.0, "flow": 0.0})
    assert torch.equal(batched[0], torch.tensor(rgb))


def test_fuse_refuses_weights_that_miss_a_stream():
    probs = {"rgb": np.full((2, 3), 0.5), "flow": np.full((2, 3), 0.5)}
    with pytest.raises(ValueError, match=r"every stream of dataset.streams, \['rgb', 'flow'\]"):
        fuse(probs, {"rgb": 1.0})
    with pytest.raises(ValueError, match="all 0"):
        fuse(probs, {"rgb": 0.0, "flow": 0.0})


def test_weight_grid():
    assert weight_grid(0.5, ["rgb", "flow"]) == [
        {"rgb": 0.0, "flow": 0.5}, {"rgb": 0.0, "flow": 1.0},
        {"rgb": 0.5, "flow": 0.0}, {"rgb": 0.5, "flow": 0.5}, {"rgb": 0.5, "flow": 1.0},
        {"rgb": 1.0, "flow": 0.0}, {"rgb": 1.0, "flow": 0.5}, {"rgb": 1.0, "flow": 1.0},
    ]
    grid = weight_grid(0.1, ["rgb", "flow"])
    assert len(grid) == 11 * 11 - 1 and {"rgb": 0.3, "flow": 0.7} in grid
    assert [w["rgb"] for w in weight_grid(0.3, ["rgb", "flow"])][::4] == [0.0, 0.3, 0.6, 0.9]
    three = weight_grid(0.5, ["a", "b", "c"])  # 3^3 - 1 points, the first stream slowest
    assert len(three) == 26 and three[0] == {"a": 0.0, "b": 0.0, "c": 0.5}
    assert three[-1] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert {"a": 0.0, "b": 0.0, "c": 0.0} not in three
    assert weight_grid(0.1, ["i3d"]) == [{"i3d": 1.0}]  # one stream: weight 1, nothing to search


def test_search_finds_the_best_and_breaks_ties_deterministically():
    two = ["rgb", "flow"]
    found = search_weights(0.5, two, lambda w: -abs(w["rgb"] - 1.0) - abs(w["flow"] - 0.5))
    assert found.weights == {"rgb": 1.0, "flow": 0.5} and found.score == 0.0
    assert len(found.table) == 8
    # scaled weights tie: the most balanced, then the largest total wins
    ratio = search_weights(0.5, two, lambda w: float(w["rgb"] == w["flow"]))
    assert ratio.weights == {"rgb": 1.0, "flow": 1.0}
    flat = search_weights(0.5, two, lambda w: 0.0)
    assert flat.weights == {"rgb": 1.0, "flow": 1.0}
    weights, score = search_weights(0.5, two, lambda w: w["flow"] - w["rgb"])[:2]  # a tuple
    assert weights == {"rgb": 0.0, "flow": 1.0} and score == 1.0


def test_temper_is_the_renormalised_power():
    # T = 2: sqrt(0.8) / (sqrt(0.8) + sqrt(0.2)) = 2 / 3
    out = temper(np.array([[0.8], [0.2]]), 2.0)
    np.testing.assert_allclose(out, [[2 / 3], [1 / 3]])
    batched = temper(torch.tensor([[[0.8], [0.2]]]), 0.5)  # T = 1/2: squares, 0.64 / 0.68
    torch.testing.assert_close(batched, torch.tensor([[[0.64 / 0.68], [0.04 / 0.68]]]))
    same = np.array([[0.3], [0.7]])
    assert temper(same, 1.0) is same
    with pytest.raises(ValueError, match="temperature"):
        temper(same, 0.0)


def test_product_lets_a_stream_veto_what_it_rules_out():
    # truth b. RGB cannot tell a from b and is sure of a; FLOW rules a out but cannot tell b from c
    rgb = np.array([[0.95], [0.05], [0.0]])
    flow = np.array([[0.0], [0.5], [0.5]])
    probs, weights = {"rgb": rgb, "flow": flow}, {"rgb": 1.0, "flow": 1.0}
    summed = fuse(probs, weights)
    np.testing.assert_allclose(summed, [[0.95], [0.55], [0.5]])  # the sure stream wins: a
    product = fuse(probs, weights, FusionMethod(FusionRule.PRODUCT, floor=1e-8))
    # a: 0.95 * 1e-8, b: 0.05 * 0.5, c: 1e-8 * 0.5, renormalised
    raw = np.array([0.95e-8, 0.025, 0.5e-8])
    np.testing.assert_allclose(product[:, 0], raw / raw.sum(), rtol=1e-6)
    assert int(product.argmax()) == 1
    torch_product = fuse({s: torch.tensor(p) for s, p in probs.items()}, weights,
                         FusionMethod(FusionRule.PRODUCT))
    np.testing.assert_allclose(torch_product.numpy(), product, rtol=1e-6)


def test_temperatures_apply_per_stream_before_fusing():
    rgb, flow = np.array([[0.8], [0.2]]), np.array([[0.3], [0.7]])
    method = FusionMethod(temperatures={"rgb": 2.0})  # RGB softened to 2/3, 1/3
    out = fuse({"rgb": rgb, "flow": flow}, {"rgb": 0.5, "flow": 0.5}, method)
    np.testing.assert_allclose(out, [[(2 / 3 + 0.3) / 2], [(1 / 3 + 0.7) / 2]])


def test_fit_temperature_matches_the_hand_worked_optimum():
    # p = (0.9, 0.1) on every frame, right on 3 of 4: the NLL is least where the tempered top
    # probability is 3/4, 9 ** (1 / T) = 3, so T = 2
    probs = np.tile(np.array([[0.9], [0.1]]), (1, 4))
    found = fit_temperature([probs[:, :3], probs[:, 3:]], [np.zeros(3), np.ones(1)])
    assert found == pytest.approx(2.0, rel=1e-3)
    # always right: sharpen to the lower bound
    sharp = fit_temperature([probs], [np.zeros(4)], bounds=(0.1, 10.0))
    assert sharp == pytest.approx(0.1, rel=1e-3)
    with pytest.raises(ValueError, match="frames"):
        fit_temperature([probs], [np.zeros(3)])


def test_fusion_settings_in_the_config():
    cfg = load_config("demo", ["fusion.rule=product", "fusion.temperature=true"])
    method = FusionMethod.from_config(cfg.fusion, {"rgb": 1.5})
    assert method.rule is FusionRule.PRODUCT and method.temperatures == {"rgb": 1.5}
    default = load_config("50salads").fusion  # the measured default input, METHOD.md's sum
    assert default.rule is FusionRule.SUM and default.input is FusionInput.TRAJECTORY
    paper = load_config("50salads", ["fusion.input=final"]).fusion
    assert FusionMethod.from_config(paper).rule is FusionRule.SUM
    assert paper.input is FusionInput.FINAL
    bad_values = ("fusion.rule=mean", "fusion.input=encoder", "fusion.temperature_bounds=[2.0,1.0]",
                  "fusion.prob_floor=0")
    for bad in bad_values:
        with pytest.raises(ConfigError, match="fusion"):
            load_config("demo", [bad])


def test_fusion_and_search_over_three_streams():
    probs = {s: np.full((2, 3), v) for s, v in (("a", 0.1), ("b", 0.2), ("c", 0.4))}
    np.testing.assert_allclose(fuse(probs, {"a": 1.0, "b": 0.5, "c": 0.25}), np.full((2, 3), 0.3))
    with pytest.raises(ValueError, match="every stream of dataset.streams"):
        fuse(probs, {"a": 1.0, "b": 0.5})
    # c alone is best at 0.5 and 1 alike; the tie goes to the smaller spread max - min
    found = search_weights(0.5, ["a", "b", "c"], lambda w: float(w["a"] == w["b"] == 0))
    assert found.weights == {"a": 0.0, "b": 0.0, "c": 0.5} and len(found.table) == 26
    # among equally scored points the most balanced wins (spread max - min)
    even = search_weights(0.5, ["a", "b", "c"], lambda w: 0.0)
    assert even.weights == {"a": 1.0, "b": 1.0, "c": 1.0}


def test_product_over_three_streams():
    probs = {s: np.array([[v], [1 - v]]) for s, v in (("a", 0.5), ("b", 0.8), ("c", 0.2))}
    out = fuse(probs, {"a": 1.0, "b": 1.0, "c": 1.0}, FusionMethod(FusionRule.PRODUCT))
    np.testing.assert_allclose(out[:, 0], [0.5, 0.5], rtol=1e-6)  # 0.08 vs 0.08, renormalised
