import math

import torch

from twostream_das.model.embeddings import TimestepEmbedding, sinusoidal_embedding


def test_sinusoid_values_by_hand():
    t = torch.tensor([0, 2])
    emb = sinusoidal_embedding(t, 6)  # half = 3, freqs 1, 1e-2, 1e-4
    assert emb.shape == (2, 6)
    torch.testing.assert_close(emb[0], torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    expected = [math.sin(2), math.sin(0.02), math.sin(2e-4), math.cos(2), math.cos(0.02),
                math.cos(2e-4)]
    torch.testing.assert_close(emb[1], torch.tensor(expected))


def test_odd_dim_is_zero_padded():
    emb = sinusoidal_embedding(torch.tensor([5, 7, 11]), 7)
    assert emb.shape == (3, 7)
    assert torch.all(emb[:, -1] == 0)


def test_timestep_embedding_gives_a_bias_per_sample():
    torch.manual_seed(0)
    embed = TimestepEmbedding(16, 5)
    out = embed(torch.tensor([0, 999, 0]))
    assert out.shape == (3, 5)
    torch.testing.assert_close(out[0], out[2])
    assert not torch.allclose(out[0], out[1])
