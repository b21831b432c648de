import pytest
import torch

from twostream_das.config import ConfigError, MaskConfig, MaskStrategy, load_config
from twostream_das.model.masking import (
    boundary_mask,
    draw_strategies,
    random_action_mask,
    sample_condition_mask,
    strategy_weights,
)

LABELS = torch.tensor(
    [
        [0, 0, 1, 1, 1, 2, 2, 0, -100, -100],
        [3, 3, 3, 1, 1, 1, 1, 1, 1, 1],
    ]
)
MASK = LABELS >= 0
BOUNDARY = torch.tensor(
    [
        [0.0, 0.6, 1.0, 0.6, 0.3, 1.0, 0.29, 1.0, 0.0, 0.0],
        [0.0, 0.1, 0.6, 1.0, 0.6, 0.1, 0.0, 0.0, 0.0, 0.0],
    ]
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_boundary_mask_zeroes_exactly_the_frames_at_or_above_threshold():
    keep = boundary_mask(BOUNDARY, MASK, 0.3)
    assert keep.tolist() == [
        [True, False, False, False, False, False, True, False, False, False],
        [True, True, False, False, False, True, True, True, True, True],
    ]


def test_random_action_hides_exactly_the_chosen_present_classes():
    for seed in range(20):
        keep = random_action_mask(LABELS, MASK, 1, 5, gen(seed))
        for b in range(2):
            hidden = set(LABELS[b][MASK[b] & ~keep[b]].tolist())
            assert len(hidden) == 1  # one class present in that video ...
            (cls,) = hidden
            assert torch.equal(~keep[b] & MASK[b], (LABELS[b] == cls))  # ... all of its frames
        assert not keep[~MASK].any()


def test_random_action_draws_with_replacement_like_the_reference():
    """Two draws among the present classes, with replacement (DiffAct's segment=2): video 0 has
    3 present classes, so 1/3 of the time both draws hit one class and only it is hidden."""
    seen, single = set(), 0
    trials = 600
    for seed in range(trials):
        keep = random_action_mask(LABELS, MASK, 2, 5, gen(seed))
        hidden0 = set(LABELS[0][MASK[0] & ~keep[0]].tolist())
        assert 1 <= len(hidden0) <= 2 and hidden0 <= {0, 1, 2}
        for cls in hidden0:  # every frame of a hidden class
            assert not keep[0][LABELS[0] == cls].any()
        seen.add(frozenset(hidden0))
        single += len(hidden0) == 1
        assert set(LABELS[1][~keep[1]].tolist()) <= {1, 3}
    assert len(seen) == 6  # every single class and every pair occurs
    assert abs(single / trials - 1 / 3) < 0.06


def test_random_action_draw_by_hand():
    # one draw u picks the floor(u * n)-th present class: video 0 has classes 0, 1, 2 present,
    # video 1 has 1 and 3
    u = torch.rand(2, 1, generator=gen(11))
    keep = random_action_mask(LABELS, MASK, 1, 5, gen(11))
    assert set(LABELS[0][MASK[0] & ~keep[0]].tolist()) == {[0, 1, 2][int(u[0, 0] * 3)]}
    assert set(LABELS[1][~keep[1]].tolist()) == {[1, 3][int(u[1, 0] * 2)]}


def test_zero_is_never_drawn_by_default_and_every_default_is():
    cfg = MaskConfig()
    assert MaskStrategy.ZERO not in cfg.strategies and cfg.strategy_weights is None
    ids = draw_strategies(strategy_weights(cfg.strategies, cfg), 3000, gen(1))
    counts = torch.bincount(ids, minlength=len(cfg.strategies))
    assert counts.shape == (3,) and int(counts.min()) > 900  # uniform over the three


def test_strategy_weights_set_the_draw_probabilities():
    # DiffAct's cond_types: full, zero, boundary, segment, segment -> 1 : 1 : 1 : 2
    ids = draw_strategies([1, 1, 1, 2], 20000, gen(2))
    share = torch.bincount(ids, minlength=4).double() / 20000
    expected = torch.tensor([0.2, 0.2, 0.2, 0.4], dtype=torch.float64)
    assert torch.allclose(share, expected, atol=0.015)
    assert not (draw_strategies([0, 1, 0], 500, gen(3)) != 1).any()  # weight 0: never drawn
    cfg = MaskConfig(
        strategies=[MaskStrategy.FULL, MaskStrategy.BOUNDARY], strategy_weights=[0.0, 1.0]
    )
    out = sample_condition_mask(cfg.strategies, LABELS, BOUNDARY, MASK, cfg, gen(4), 5)
    assert torch.equal(out, boundary_mask(BOUNDARY, MASK, cfg.boundary_threshold).float())


def test_strategy_weights_are_checked():
    with pytest.raises(ConfigError, match="model.masks.strategy_weights"):
        load_config("demo", ["model.masks.strategy_weights=[1,2]"])  # 3 strategies
    with pytest.raises(ConfigError, match="model.masks.strategy_weights"):
        load_config("demo", ["model.masks.strategy_weights=[0,0,0]"])
    cfg = load_config(
        "demo",
        ["model.masks.strategies=[full,zero,boundary,random_action]",
         "model.masks.strategy_weights=[1,1,1,2]"],
    )
    assert cfg.model.masks.strategy_weights == [1.0, 1.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="are for the strategies"):
        strategy_weights([MaskStrategy.FULL], cfg.model.masks)


def test_sampled_masks_are_one_of_the_strategies_and_respect_padding():
    cfg = MaskConfig(strategies=list(MaskStrategy), boundary_threshold=0.3)
    full = MASK.float()
    zero = torch.zeros_like(full)
    bound = boundary_mask(BOUNDARY, MASK, 0.3).float()
    kinds = set()
    for seed in range(40):
        out = sample_condition_mask(cfg.strategies, LABELS, BOUNDARY, MASK, cfg, gen(seed), 5)
        assert out.dtype == torch.float32 and out.shape == LABELS.shape
        assert torch.all(out[~MASK] == 0)
        for b in range(2):
            row = out[b]
            if torch.equal(row, full[b]):
                kinds.add("full")
            elif torch.equal(row, zero[b]):
                kinds.add("zero")
            elif torch.equal(row, bound[b]):
                kinds.add("boundary")
            else:
                hidden = set(LABELS[b][MASK[b] & (row == 0)].tolist())
                assert len(hidden) == 1
                kinds.add("action")
    assert kinds == {"full", "zero", "boundary", "action"}


def test_single_strategy_ablation_and_reproducibility():
    cfg = MaskConfig(strategies=[MaskStrategy.BOUNDARY])
    out = sample_condition_mask(cfg.strategies, LABELS, BOUNDARY, MASK, cfg, gen(3))
    assert torch.equal(out, boundary_mask(BOUNDARY, MASK, cfg.boundary_threshold).float())
    cfg = MaskConfig()
    a = sample_condition_mask(cfg.strategies, LABELS, BOUNDARY, MASK, cfg, gen(7), 5)
    b = sample_condition_mask(cfg.strategies, LABELS, BOUNDARY, MASK, cfg, gen(7), 5)
    assert torch.equal(a, b)
