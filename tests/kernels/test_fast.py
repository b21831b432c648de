"""The shifted multiply-add helpers of the fast backends, by hand (the ops against the
reference: test_ops.py)."""

import torch

from twostream_das.kernels.fast import (
    add_window_context,
    add_window_context_transposed,
    add_window_scores,
    dropout_shares,
)


def run(helper, out, x, y, dilation):
    return helper(out.clone(), x, y, dilation)


def test_hand_worked_window_helpers():
    # T = 3, C = 1, k = 3, d = 1: offsets -1, 0, +1; keys outside the sequence add nothing
    a = torch.tensor([[[1.0, 2.0, 3.0]]])
    b = torch.tensor([[[10.0, 20.0, 30.0]]])
    w = torch.tensor([[[1.0] * 3, [2.0] * 3, [3.0] * 3]])  # (1, 3, 3): w_j = j + 1
    scores = run(add_window_scores, torch.zeros(1, 3, 3), a, b, 1)
    assert scores[0].tolist() == [[0, 20, 60], [10, 40, 90], [20, 60, 0]]
    # out[t] = 1 b[t-1] + 2 b[t] + 3 b[t+1]
    assert run(add_window_context, torch.zeros(1, 1, 3), b, w, 1)[0, 0].tolist() == [80, 140, 80]
    # out[s] = 1 b[s+1] + 2 b[s] + 3 b[s-1]
    assert run(add_window_context_transposed, torch.zeros(1, 1, 3), b, w, 1)[0, 0].tolist() == [
        40, 100, 120,
    ]  # fmt: skip


def test_transposed_helper_is_the_adjoint_of_the_context_helper():
    # <context(w, v), g> = <v, transposed(g, w)> for every v, g: the backward of the mix
    gen = torch.Generator().manual_seed(3)
    v, g = torch.randn(2, 4, 50, generator=gen, dtype=torch.float64).unbind(0)
    v, g = v[None], g[None]
    w = torch.rand(1, 5, 50, generator=gen, dtype=torch.float64)
    mixed = run(add_window_context, torch.zeros_like(v), v, w, 7)
    sent = run(add_window_context_transposed, torch.zeros_like(g), g, w, 7)
    torch.testing.assert_close((mixed * g).sum(), (v * sent).sum())


def test_dropout_shares_are_splitmix64_in_16_bit_halves():
    # splitmix64 from state 1234567: the reference sequence (Vigna's splitmix64.c)
    draws = dropout_shares(1234567, 20).view(torch.int64)  # 5 draws of 4 shares each
    assert [d % 2**64 for d in draws.tolist()] == [
        6457827717110365317, 3203168211198807973, 9817491932198370423,
        4593380528125082431, 16408922859458223821,
    ]  # fmt: skip
    assert dropout_shares(1234567, 7).tolist() == dropout_shares(1234567, 8)[:7].tolist()
