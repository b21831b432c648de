"""DPM-Solver++(2M) and its SDE variant (``diffusion/samplers/dpmpp.py``): hand-worked weights,
the updates, the oracle, the order of accuracy, randomness and the per-run history."""

from __future__ import annotations

import math

import pytest
import torch

from twostream_das.config import load_config
from twostream_das.diffusion import (
    DDIMSampler,
    DPMSolverPPSampler,
    GaussianDiffusion,
    NoiseSchedule,
    cosine_schedule,
    dpmpp_coefficients,
    make_sampler,
    per_video_noise,
    sample,
)

# A schedule of 4 steps whose half log-SNRs lambda = 0.5 log(abar / (1 - abar)) are
# 2L, L, 0, -L with L = log 2: abar = 16/17, 4/5, 1/2, 1/5.
TINY_ABAR = [16 / 17, 0.8, 0.5, 0.2]
TINY = NoiseSchedule(
    torch.tensor([1 - TINY_ABAR[0]] + [1 - b / a for a, b in zip(TINY_ABAR[:-1], TINY_ABAR[1:],
                                                               strict=True)],
                 dtype=torch.float64),
    torch.tensor(TINY_ABAR, dtype=torch.float64),
)  # fmt: skip
COSINE = cosine_schedule(1000, 0.008)


def tiny(stochastic: bool = False, steps: int = 3) -> DPMSolverPPSampler:
    out = DPMSolverPPSampler(TINY, stochastic)
    out.set_timesteps(steps)
    return out


def close(a, b):
    return pytest.approx(b, rel=1e-12, abs=1e-15) == a


def test_the_tiny_schedule_is_what_its_comment_says():
    assert torch.allclose(torch.cumprod(1 - TINY.betas, 0), TINY.alphas_cumprod)
    assert tiny().timesteps == [3, 1, 0]  # floor(linspace(-1, 3, 4)) reversed, without -1


def test_ode_weights_are_hand_worked():
    """3 steps on the tiny schedule: 3 -> 1 (h = 2L, first order), 1 -> 0 (h = L, r = 2),
    0 -> -1 (the last: x0 itself)."""
    s = tiny()
    # step 3 -> 1: sigma_t / sigma_s = sqrt(0.2 / 0.8) = 1/2; alpha_t (1 - e^-2L) = sqrt(0.8) 3/4
    assert close(s.coefficients(3), (0.5, math.sqrt(0.8) * 0.75, 0.0, 0.0))
    # step 1 -> 0: sigma ratio sqrt((1/17) / 0.2); B = alpha_t (1 - e^-L) = (4 / sqrt 17) / 2;
    # r = 2L / L = 2, so D = (1 + 1/4) m_1 - 1/4 m_3
    b = 2 / math.sqrt(17)
    assert close(s.coefficients(1), (math.sqrt(5 / 17), 1.25 * b, -0.25 * b, 0.0))
    assert s.coefficients(0) == (0.0, 1.0, 0.0, 0.0)


def test_sde_weights_are_hand_worked():
    s = tiny(stochastic=True)
    # step 3 -> 1: x_t weight sigma ratio * e^-2L = 1/2 * 1/4; B = sqrt(0.8) (1 - 1/16);
    # noise sigma_t sqrt(1 - e^-4L) = sqrt(0.2 * 15/16) = sqrt(3) / 4
    assert close(s.coefficients(3), (0.125, math.sqrt(0.8) * 15 / 16, 0.0, math.sqrt(3) / 4))
    # step 1 -> 0: e^-h = 1/2: x_t weight sqrt(5/17) / 2; B = (4 / sqrt 17) * 3/4;
    # noise sqrt(1/17) * sqrt(3/4)
    b = 3 / math.sqrt(17)
    assert close(
        s.coefficients(1),
        (math.sqrt(5 / 17) / 2, 1.25 * b, -0.25 * b, math.sqrt(3 / 4 / 17)),
    )
    assert s.coefficients(0) == (0.0, 1.0, 0.0, 0.0)


def test_the_coefficient_function_is_plain_floats_and_checks_its_step():
    grid = [3, 1, 0, -1]
    c = dpmpp_coefficients(TINY_ABAR, grid, 1)
    assert all(type(v) is float for v in c)
    assert c == tiny().coefficients(1)
    with pytest.raises(ValueError, match="step 3 is not one of the 3 steps"):
        dpmpp_coefficients(TINY_ABAR, grid, 3)


def test_one_and_two_updates_by_hand():
    s = tiny()
    x_t = torch.tensor([[[1.0, -2.0]]], dtype=torch.float64)  # (1, 1, 2)
    m3 = torch.tensor([[[0.5, -0.5]]], dtype=torch.float64)
    m1 = torch.tensor([[[0.25, 0.5]]], dtype=torch.float64)
    x1 = s.step(m3, 3, x_t)
    expected1 = 0.5 * x_t + math.sqrt(0.8) * 0.75 * m3
    torch.testing.assert_close(x1, expected1, rtol=1e-14, atol=1e-14)
    # by hand: 0.5 [1, -2] + 0.670820 [0.5, -0.5]
    torch.testing.assert_close(
        x1, torch.tensor([[[0.8354102, -1.3354102]]], dtype=torch.float64), rtol=0, atol=1e-6
    )
    x0_ = s.step(m1, 1, x1)
    b = 2 / math.sqrt(17)
    expected0 = math.sqrt(5 / 17) * x1 + b * (1.25 * m1 - 0.25 * m3)
    torch.testing.assert_close(x0_, expected0, rtol=1e-14, atol=1e-14)
    final = torch.tensor([[[0.5, 0.5]]], dtype=torch.float64)
    assert torch.equal(s.step(final, 0, x0_), final)


def test_the_first_steps_are_ddim_with_eta_0_and_eta_1():
    """First order, DPM-Solver++ is DDIM (eta = 0) and its SDE is DDIM with eta = 1 (DiffAct's
    default): the same update and the same draw."""
    x0 = torch.rand(2, 3, 5, generator=torch.Generator().manual_seed(0)) - 0.5
    x_t = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(1))
    for stochastic, eta in ((False, 0.0), (True, 1.0)):
        ddim, dpm = DDIMSampler(COSINE, eta), DPMSolverPPSampler(COSINE, stochastic)
        ddim.set_timesteps(6)
        dpm.set_timesteps(6)
        assert dpm.timesteps == ddim.timesteps
        gens = lambda: [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]  # noqa: E731
        expected = ddim.step(x0, 999, x_t, gens(), [5, 4])
        torch.testing.assert_close(dpm.step(x0, 999, x_t, gens(), [5, 4]), expected)


def run(s, x0, generators, lengths=None, x_T=None):
    """The sampling loop with a denoiser that always returns the true x0."""
    x = per_video_noise(x0.shape, generators, lengths, torch.device("cpu")) if x_T is None else x_T
    trajectory = [x]
    for t in s.timesteps:
        x = s.step(x0, t, x, generators, lengths)
        trajectory.append(x)
    return trajectory


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("steps", [1, 2, 5, 25])
def test_an_exact_x0_oracle_is_returned_exactly(stochastic, steps):
    x0 = 0.5 * (2 * torch.nn.functional.one_hot(torch.tensor([[0, 2, 1, 1]]), 3).transpose(1, 2)
                - 1.0).float()  # fmt: skip
    s = DPMSolverPPSampler(COSINE, stochastic)
    s.set_timesteps(steps)
    assert torch.equal(run(s, x0, [torch.Generator().manual_seed(0)])[-1], x0)


def test_with_an_exact_oracle_the_ode_stays_on_the_forward_path():
    """m_i = m_{i-1} = x0: the multistep D is x0 (its weights sum to one) and every sample is
    sqrt(abar_t) x0 + sqrt(1 - abar_t) eps of the starting eps."""
    s = DPMSolverPPSampler(COSINE)
    s.set_timesteps(8)
    x0 = (torch.rand(1, 3, 6, generator=torch.Generator().manual_seed(3)) - 0.5).double()
    x_T = torch.randn(1, 3, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    trajectory = run(s, x0, None, x_T=x_T)
    abar = COSINE.alphas_cumprod
    t0 = s.timesteps[0]
    eps = (x_T - abar[t0].sqrt() * x0) / (1 - abar[t0]).sqrt()
    for t, x in zip(s.timesteps[1:], trajectory[1:-1], strict=True):
        torch.testing.assert_close(x, abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * eps)


def _gaussian_error(steps: int, second_order: bool) -> float:
    """Solve the probability-flow ODE of Gaussian data x0 ~ N(0, v) from t = 900 to 100 on a
    uniform grid, with the exact denoiser E[x0 | x_t] = sqrt(abar) v / (abar v + 1 - abar) x_t;
    the exact solution keeps x_t / sqrt(abar_t v + 1 - abar_t). Returns the error at t = 100."""
    abar, v = COSINE.alphas_cumprod.tolist(), 0.25
    grid = [900 - 800 * i // steps for i in range(steps + 1)]
    x = x_T = 1.5
    previous = 0.0
    for i in range(steps):
        a = abar[grid[i]]
        m = math.sqrt(a) * v / (a * v + 1 - a) * x
        if second_order:
            c = dpmpp_coefficients(abar, grid, i)
        else:  # each step first order: the step alone
            c = dpmpp_coefficients(abar, grid[i : i + 2], 0)
        x, previous = c.x_t * x + c.x0 * m + c.x0_prev * previous, m
    a, a_T = abar[grid[-1]], abar[grid[0]]
    return abs(x - x_T * math.sqrt(a * v + 1 - a) / math.sqrt(a_T * v + 1 - a_T))


def test_the_multistep_solver_is_second_order_and_ddim_first():
    """Doubling the steps divides DDIM's error by about 2 and DPM-Solver++(2M)'s by about 4."""
    ddim = [_gaussian_error(n, False) for n in (32, 64, 128)]
    dpm = [_gaussian_error(n, True) for n in (32, 64, 128)]
    for coarse, fine in zip(ddim[:-1], ddim[1:], strict=True):
        assert 1.9 < coarse / fine < 2.1
    for coarse, fine in zip(dpm[:-1], dpm[1:], strict=True):
        assert 3.2 < coarse / fine < 4.2
    assert all(e2 < e1 / 20 for e1, e2 in zip(ddim, dpm, strict=True))


def test_sde_samples_differ_by_generator_are_reproducible_and_ignore_batch_mates():
    s = DPMSolverPPSampler(COSINE, stochastic=True)
    s.set_timesteps(5)
    x0 = torch.rand(2, 3, 12, generator=torch.Generator().manual_seed(0)) - 0.5
    a = run(s, x0, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    again = run(s, x0, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    other = run(s, x0, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(3)])
    for x, y, z in zip(a[1:-1], again[1:-1], other[1:-1], strict=True):
        assert torch.equal(x, y)  # reproducible
        assert torch.equal(x[0], z[0]) and not torch.allclose(x[1], z[1])  # per row
    alone = run(s, x0[1:, :, :8], [torch.Generator().manual_seed(2)])
    batched = run(s, x0, [torch.Generator().manual_seed(7), torch.Generator().manual_seed(2)],
                  lengths=[12, 8])  # fmt: skip
    for x, y in zip(alone, batched, strict=True):
        torch.testing.assert_close(y[1, :, :8], x[0])


def test_each_row_draws_c_times_its_length_per_stochastic_step():
    s = DPMSolverPPSampler(COSINE, stochastic=True)
    s.set_timesteps(4)  # 3 stochastic steps and the last, which draws nothing
    gen = torch.Generator().manual_seed(11)
    run(s, torch.zeros(1, 3, 9), [gen], lengths=[7])
    replay = torch.Generator().manual_seed(11)
    for _ in range(1 + 3):  # x_T and three steps, each C x length = 3 x 7
        torch.randn(3, 7, generator=replay)
    assert torch.equal(torch.randn(5, generator=gen), torch.randn(5, generator=replay))


def test_the_ode_draws_nothing_and_the_sde_needs_a_generator():
    s = DPMSolverPPSampler(COSINE)
    s.set_timesteps(3)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    run(s, torch.zeros(1, 2, 3), [gen], x_T=torch.ones(1, 2, 3))
    assert torch.equal(gen.get_state(), state)
    sde = DPMSolverPPSampler(COSINE, stochastic=True)
    sde.set_timesteps(3)
    with pytest.raises(ValueError, match="generator"):
        sde.step(torch.zeros(1, 2, 3), 999, torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match="timesteps"):
        sde.step(torch.zeros(1, 2, 3), 998, torch.ones(1, 2, 3))


def _denoiser(x_in: torch.Tensor, t: int) -> torch.Tensor:
    """A fake network whose x0 logits depend on x_t and t (so the history matters)."""
    return 3.0 * x_in + 0.001 * t


def test_history_is_per_run_reused_interleaved_and_reset():
    """One sampler object serves runs one after another, interleaved, and after
    set_timesteps: each gives what a fresh sampler gives."""
    diffusion = GaussianDiffusion(COSINE, 0.5)

    def loop(s):  # a generator of (t, x) so that two runs can interleave
        x = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(9))
        for t in s.timesteps:
            p = torch.softmax(_denoiser(diffusion.model_input(x), t), 1)
            x = s.step(diffusion.probs_to_x0(p), t, x)
            yield x

    fresh = DPMSolverPPSampler(COSINE)
    fresh.set_timesteps(6)
    expected = list(loop(fresh))
    shared = DPMSolverPPSampler(COSINE)
    shared.set_timesteps(6)
    assert all(torch.equal(a, b) for a, b in zip(list(loop(shared)), expected, strict=True))
    first, second = loop(shared), loop(shared)
    for a, b, e in zip(first, second, expected, strict=True):  # interleaved step by step
        assert torch.equal(a, e) and torch.equal(b, e)
    abandoned = loop(shared)
    next(abandoned), next(abandoned)  # a run left half-way
    shared.set_timesteps(6)
    assert all(torch.equal(a, b) for a, b in zip(loop(shared), expected, strict=True))
    del abandoned
    assert shared._pending == {}  # nothing held once the runs' samples are gone


def test_a_second_order_step_refuses_a_sample_it_did_not_return():
    s = DPMSolverPPSampler(COSINE)
    s.set_timesteps(4)
    x = s.step(torch.zeros(1, 2, 3), 999, torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match="needs the x0 estimate of step 999 of the same run"):
        s.step(torch.zeros(1, 2, 3), 749, x.clone())


@pytest.mark.parametrize("name", ["dpmpp_2m", "dpmpp_2m_sde"])
def test_the_registry_builds_both_and_the_loop_runs_them(name):
    cfg = load_config(None, ["dataset.streams={a: {folder: a}}", f"eval.sampler={name}",
                             "eval.steps=4"])  # fmt: skip
    s = make_sampler(cfg)
    assert isinstance(s, DPMSolverPPSampler) and s.stochastic == name.endswith("_sde")
    assert s.timesteps == [999, 749, 499, 249]
    diffusion = GaussianDiffusion(COSINE, 0.5)
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    out = sample(_denoiser, s, diffusion, (3, 4, 5), gens, [5, 5, 3])
    again = sample(_denoiser, s, diffusion, (3, 4, 5),
                   [torch.Generator().manual_seed(i) for i in range(3)], [5, 5, 3])  # fmt: skip
    assert out.probs.shape == (3, 4, 5) and torch.equal(out.probs, again.probs)
    assert not torch.allclose(out.probs[0], out.probs[1])
