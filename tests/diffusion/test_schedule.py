import math

import torch

from twostream_das.diffusion import cosine_schedule
from twostream_das.diffusion.schedule import MAX_BETA


def test_cosine_schedule_by_hand():
    s = 0.008
    sched = cosine_schedule(1000, s)
    assert sched.num_train_timesteps == 1000
    assert sched.alphas_cumprod.dtype == torch.float64

    def f(u):
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    for n in (0, 1, 499, 998):  # before the clip, abar_n = f((n + 1) / N) / f(0)
        assert math.isclose(float(sched.alphas_cumprod[n]), f((n + 1) / 1000) / f(0), rel_tol=1e-9)
    assert float(sched.betas.max()) == MAX_BETA  # only the last step is clipped
    assert float(sched.betas[:-1].max()) < MAX_BETA
    assert torch.all(sched.alphas_cumprod[1:] < sched.alphas_cumprod[:-1])
    assert float(sched.alphas_cumprod[-1]) > 0
