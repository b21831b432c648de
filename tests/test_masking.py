import torch

from twostream_das.config import MaskConfig, MaskStrategy
from twostream_das.masking import (
    boundary_mask,
    draw_strategies,
    random_action_mask,
    sample_condition_mask,
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


def test_random_action_two_classes_are_distinct_and_capped_by_presence():
    seen = set()
    for seed in range(30):
        keep = random_action_mask(LABELS, MASK, 2, 5, gen(seed))
        hidden0 = set(LABELS[0][MASK[0] & ~keep[0]].tolist())
        assert len(hidden0) == 2 and hidden0 <= {0, 1, 2}
        seen.add(frozenset(hidden0))
        assert set(LABELS[1][~keep[1]].tolist()) == {1, 3}  # only two present: both hidden
    assert len(seen) == 3  # every pair occurs


def test_zero_is_never_drawn_by_default_and_every_default_is():
    cfg = MaskConfig()
    assert MaskStrategy.ZERO not in cfg.strategies
    ids = draw_strategies(len(cfg.strategies), 3000, gen(1))
    counts = torch.bincount(ids, minlength=len(cfg.strategies))
    assert counts.shape == (3,) and int(counts.min()) > 900  # uniform over the three


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
