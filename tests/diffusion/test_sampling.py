import math

import pytest
import torch

from _recorded_noise import RecordedNoise
from twostream_das.diffusion import (
    DDIMSampler,
    GaussianDiffusion,
    cosine_schedule,
    sample,
)

DIFFUSION = GaussianDiffusion(cosine_schedule(1000, 0.008), 0.5)


def ddim(steps: int) -> DDIMSampler:
    """DDIM with eta 1 over DIFFUSION's schedule, ``steps`` of 1000."""
    sampler = DDIMSampler(DIFFUSION.schedule, 1.0)
    sampler.set_timesteps(steps)
    return sampler


def logits_of(probs):
    return torch.tensor(probs).log()[None, :, None]  # (1, C, 1)


def test_final_and_trajectory_mean_probabilities_are_hand_worked():
    seen = []
    table = {999: [0.25, 0.75], 499: [0.5, 0.5]}  # 2 steps of 1000: 999, then 499

    def denoiser(x_in, t):
        seen.append((t, float(x_in.min()), float(x_in.max())))
        return logits_of(table[t]).expand(x_in.shape[0], -1, x_in.shape[2])

    out = sample(denoiser, ddim(2), DIFFUSION, (1, 2, 3),
                 [torch.Generator().manual_seed(0)])
    assert [t for t, _, _ in seen] == [999, 499]
    assert all(0.0 <= lo and hi <= 1.0 for _, lo, hi in seen)  # the network's view of x_t
    torch.testing.assert_close(out.probs, torch.tensor([0.5, 0.5])[None, :, None].expand(1, 2, 3))
    torch.testing.assert_close(out.trajectory_mean,
                               torch.tensor([0.375, 0.625])[None, :, None].expand(1, 2, 3))


def test_the_loop_is_the_ddim_update_of_the_softmax_estimate():
    """One stochastic step by hand: x_T = z0, x0 = (2 p - 1) s, then the update to -1 returns x0
    (abar_{-1} = 1), and p is what the denoiser's logits give."""
    sampler = ddim(1)
    gen = torch.Generator().manual_seed(3)
    z0 = torch.randn(2, 5, generator=torch.Generator().manual_seed(3))
    logits = torch.randn(1, 2, 5)
    inputs = []

    def denoiser(x_in, t):
        inputs.append(x_in)
        return logits

    out = sample(denoiser, sampler, DIFFUSION, (1, 2, 5), [gen])
    torch.testing.assert_close(inputs[0][0], (z0.clamp(-0.5, 0.5) / 0.5 + 1) / 2)
    torch.testing.assert_close(out.probs, torch.softmax(logits, 1))
    x0 = DIFFUSION.logits_to_x0(logits)
    torch.testing.assert_close(x0, (2 * torch.softmax(logits, 1) - 1) * 0.5)
    assert math.isclose(sampler.step(x0, 999, torch.zeros(1, 2, 5), gen).sub(x0).abs().max(), 0)


def test_a_row_alone_equals_the_row_in_a_padded_batch():
    weight = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))

    def denoiser(x_in, t):  # a fixed per-frame map, different per step
        return torch.einsum("oc,nct->not", weight, x_in) * (1 + t / 1000)

    sampler = ddim(5)
    alone = sample(denoiser, sampler, DIFFUSION, (1, 3, 8), [torch.Generator().manual_seed(2)])
    gens = [torch.Generator().manual_seed(9), torch.Generator().manual_seed(2)]
    batch = sample(denoiser, sampler, DIFFUSION, (2, 3, 12), gens, [12, 8])
    torch.testing.assert_close(batch.probs[1, :, :8], alone.probs[0])
    torch.testing.assert_close(batch.trajectory_mean[1, :, :8], alone.trajectory_mean[0])


def test_one_generator_per_row_is_required():
    with pytest.raises(ValueError, match="one generator per row"):
        sample(lambda x, t: x, ddim(2), DIFFUSION, (2, 3, 4),
               [torch.Generator()])


def test_recorded_noise_replays_the_draws_of_generators_exactly():
    """The loop with a generator per row and the loop fed those draws recorded give the same
    result; a recorded source checks how many draws it holds and their shapes."""
    sampler = ddim(3)  # 2 stochastic steps: x_T + 2 draws
    gen = torch.Generator().manual_seed(5)
    draws = [torch.randn(1, 2, 4, generator=gen) for _ in range(3)]

    def denoiser(x_in, t):
        return (x_in * 3.0).roll(1, dims=2)

    live = sample(denoiser, sampler, DIFFUSION, (1, 2, 4), [torch.Generator().manual_seed(5)])
    noise = RecordedNoise(draws)
    replayed = sample(denoiser, sampler, DIFFUSION, (1, 2, 4), noise)
    assert noise.used == 3
    torch.testing.assert_close(replayed.probs, live.probs, rtol=0, atol=0)
    with pytest.raises(ValueError, match="only 2 recorded"):
        sample(denoiser, sampler, DIFFUSION, (1, 2, 4), RecordedNoise(draws[:2]))
    short = RecordedNoise([d[..., :3] for d in draws])
    with pytest.raises(ValueError, match=r"shape \(1, 2, 3\); the sampler asks for \(1, 2, 4\)"):
        sample(denoiser, sampler, DIFFUSION, (1, 2, 4), short)


def test_sample_passes_split_the_samples_in_order():
    from twostream_das.diffusion import sample_passes

    assert sample_passes(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert sample_passes(4, None) == [range(0, 4)] and sample_passes(3, 8) == [range(0, 3)]
    assert sample_passes(3, 1) == [range(0, 1), range(1, 2), range(2, 3)]
    with pytest.raises(ValueError, match="per_pass >= 1"):
        sample_passes(3, 0)
