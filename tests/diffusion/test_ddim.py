import pytest
import torch

from twostream_das.diffusion import DDIMSampler, cosine_schedule, ddim_timesteps, per_video_noise


def sampler(eta=1.0, steps=25) -> DDIMSampler:
    out = DDIMSampler(cosine_schedule(1000, 0.008), eta)
    out.set_timesteps(steps)
    return out


def test_timesteps_for_25_of_1000_are_pinned():
    assert sampler().timesteps == list(range(999, 38, -40))  # 999, 959, ..., 39
    assert ddim_timesteps(1000, 25)[-1] == -1
    assert ddim_timesteps(1000, 4) == [999, 749, 499, 249, -1]
    with pytest.raises(ValueError):
        ddim_timesteps(1000, 0)


def run(sampler_, x0, generators, lengths=None):
    """The sampling loop with a fake denoiser that always returns the true x0."""
    x = per_video_noise(x0.shape, generators, lengths, torch.device("cpu"))  # x_T
    trajectory = [x]
    for t in sampler_.timesteps:
        x = sampler_.step(x0, t, x, generators, lengths)
        trajectory.append(x)
    return trajectory


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_a_perfect_denoiser_is_recovered_exactly(eta):
    x0 = (2 * torch.nn.functional.one_hot(torch.tensor([[0, 2, 1, 1]]), 3).transpose(1, 2) - 1.0)
    x0 = 0.5 * x0.float()
    trajectory = run(sampler(eta), x0, [torch.Generator().manual_seed(0)])
    assert torch.equal(trajectory[-1], x0)


def test_deterministic_ddim_stays_on_the_forward_path():
    s = sampler(eta=0.0)
    x0 = torch.rand(1, 3, 6) - 0.5
    trajectory = run(s, x0, torch.Generator().manual_seed(1))
    abar = s.schedule.alphas_cumprod.float()
    t0 = s.timesteps[0]
    eps = (trajectory[0] - abar[t0].sqrt() * x0) / (1 - abar[t0]).sqrt()
    for t_prev, x in zip(s.timesteps[1:], trajectory[1:-1], strict=False):
        expected = abar[t_prev].sqrt() * x0 + (1 - abar[t_prev]).sqrt() * eps
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=1e-5)


def test_per_video_noise_ignores_batch_mates_and_padding():
    alone = per_video_noise((1, 3, 7), [torch.Generator().manual_seed(5)], [7], torch.device("cpu"))
    gens = [torch.Generator().manual_seed(9), torch.Generator().manual_seed(5)]
    batch = per_video_noise((2, 3, 20), gens, [20, 7], torch.device("cpu"))
    assert torch.equal(batch[1, :, :7], alone[0]) and torch.all(batch[1, :, 7:] == 0)


def test_stochastic_trajectory_of_a_video_is_the_same_alone_and_batched():
    s = sampler(eta=1.0, steps=5)
    x0 = torch.rand(2, 3, 12) - 0.5
    alone = run(s, x0[1:, :, :8], [torch.Generator().manual_seed(2)])
    batched = run(s, x0, [torch.Generator().manual_seed(7), torch.Generator().manual_seed(2)],
                  lengths=[12, 8])
    for a, b in zip(alone, batched, strict=True):
        torch.testing.assert_close(b[1, :, :8], a[0])


def test_stochastic_step_needs_a_generator_and_known_step():
    s = sampler()
    x = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="generator"):
        s.step(x, 999, x)
    with pytest.raises(ValueError, match="timesteps"):
        s.step(x, 998, x, torch.Generator())
