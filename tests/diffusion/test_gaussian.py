import torch

from twostream_das.config import DiffusionConfig
from twostream_das.diffusion import GaussianDiffusion


def make(scale=0.5) -> GaussianDiffusion:
    return GaussianDiffusion.from_config(DiffusionConfig(signal_scale=scale))


def test_labels_to_scaled_one_hot():
    x0 = make(0.5).labels_to_x0(torch.tensor([[2, 0, -100]]), 3)
    assert x0.shape == (1, 3, 3)
    assert x0[0].T.tolist() == [[-0.5, -0.5, 0.5], [0.5, -0.5, -0.5], [-0.5, -0.5, -0.5]]


def test_q_sample_uses_each_samples_own_step():
    diffusion = make(1.0)
    x0 = torch.ones(2, 3, 4)
    noise = torch.full((2, 3, 4), 2.0)
    t = torch.tensor([0, 999])
    x_t = diffusion.q_sample(x0, t, noise)
    abar = diffusion.schedule.alphas_cumprod
    for b in range(2):
        expected = abar[t[b]].sqrt() + 2 * (1 - abar[t[b]]).sqrt()
        torch.testing.assert_close(x_t[b], torch.full((3, 4), float(expected)))


def test_model_input_and_x0_estimate_ranges():
    diffusion = make(0.5)
    x = torch.tensor([[[-3.0, -0.5, 0.0, 0.25, 9.0]]])
    assert diffusion.model_input(x).tolist() == [[[0.0, 0.0, 0.5, 0.75, 1.0]]]
    logits = torch.tensor([[[0.0], [0.0]]])  # softmax 0.5 / 0.5 -> x0 estimate 0
    assert diffusion.logits_to_x0(logits).abs().max() == 0


def test_timesteps_come_from_the_generator():
    diffusion = make()
    a = diffusion.sample_timesteps(6, torch.Generator().manual_seed(4))
    b = diffusion.sample_timesteps(6, torch.Generator().manual_seed(4))
    assert a.dtype == torch.long and a.shape == (6,) and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < 1000
