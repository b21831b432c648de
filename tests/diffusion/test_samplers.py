"""The sampler contract, the registry and the one factory (``diffusion/samplers``)."""

from __future__ import annotations

import pytest
import torch

from twostream_das.config import load_config, to_dict
from twostream_das.diffusion import (
    SAMPLERS,
    DDIMSampler,
    GaussianDiffusion,
    NoiseSchedule,
    cosine_schedule,
    make_sampler,
    sample,
)
from twostream_das.errors import ConfigError

CFG = load_config(None, ["dataset.streams={a: {folder: a}}", "eval.steps=4"])


class HalfwaySampler:
    """A second sampler in a few lines: x_prev = the midpoint of x_t and x0 (deterministic)."""

    def __init__(self, schedule: NoiseSchedule, cfg) -> None:
        self.schedule = schedule
        self.timesteps: list[int] = []

    def set_timesteps(self, num_inference_steps: int) -> None:
        n = self.schedule.num_train_timesteps
        self.timesteps = [
            n - 1 - i * (n // num_inference_steps) for i in range(num_inference_steps)
        ]

    def step(self, x0, t, x_t, generator=None, lengths=None):
        return 0.5 * (x0 + x_t)


def test_the_factory_builds_the_configured_sampler_with_its_steps():
    sampler = make_sampler(CFG)
    assert isinstance(sampler, DDIMSampler)
    assert sampler.timesteps == [999, 749, 499, 249]  # eval.steps = 4 of 1000
    assert sampler.eta == CFG.model.diffusion.eta


def test_a_second_sampler_is_one_registry_line(monkeypatch):
    monkeypatch.setitem(SAMPLERS, "halfway", HalfwaySampler)  # the one line
    cfg = load_config(
        None, ["dataset.streams={a: {folder: a}}", "eval.sampler=halfway", "eval.steps=2"]
    )
    sampler = make_sampler(cfg)
    assert isinstance(sampler, HalfwaySampler) and sampler.timesteps == [999, 499]
    seen = []

    def denoiser(x_in, t):  # a fake network: the step and a fixed class
        seen.append(t)
        return torch.tensor([0.0, 9.0])[None, :, None].expand(*x_in.shape)

    diffusion = GaussianDiffusion(cosine_schedule(1000, 0.008), 0.5)
    out = sample(denoiser, sampler, diffusion, (1, 2, 3), [torch.Generator().manual_seed(0)])
    assert seen == [999, 499] and out.probs.shape == (1, 2, 3)
    assert torch.all(out.probs.argmax(1) == 1)


def test_an_unknown_sampler_is_a_config_error_naming_the_key_and_the_choices():
    cfg = load_config(None, ["dataset.streams={a: {folder: a}}", "eval.sampler=dpm"])
    with pytest.raises(ConfigError, match=r"eval.sampler = 'dpm' is not a sampler; expected.*ddim"):
        make_sampler(cfg)


def test_ddim_follows_the_contract_with_a_fake_denoiser():
    """set_timesteps(n) -> timesteps; step(x0, t, x_t, generator) -> x_prev; with a denoiser
    that always returns the true x0, the last step lands on it (hand-worked: abar_{-1} = 1)."""
    sampler = make_sampler(CFG)
    x0 = torch.tensor([[[0.5, -0.5, 0.5]], [[-0.5, 0.5, -0.5]]]).transpose(0, 1)  # (1, 2, 3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 3, generator=gen)
    for t in sampler.timesteps:
        x = sampler.step(x0, t, x, gen)
    assert torch.equal(x, x0)


def test_the_number_of_steps_has_one_key():
    """eval.steps; the older model.diffusion.num_inference_steps is refused (tools/upgrade.py
    translates it, tests/tools/test_upgrade.py)."""
    assert "num_inference_steps" not in str(to_dict(CFG))
    with pytest.raises(ConfigError, match="today it is eval.steps"):
        load_config(None, ["dataset.streams={a: {folder: a}}",
                           "model.diffusion.num_inference_steps=6"])
