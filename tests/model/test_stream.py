import pytest
import torch

from _model_helpers import lengths_mask, pad_batch, sampler, small_config
from twostream_das.data.collate import Batch
from twostream_das.diffusion import make_sampler
from twostream_das.model.losses import TERMS
from twostream_das.model.stream import DiffusionStream


def make_stream(cfg=None, in_dim=7, num_classes=4, seed=0) -> DiffusionStream:
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # weight init only
        return DiffusionStream.from_config(cfg or small_config(), in_dim, num_classes)


def make_batch(features: torch.Tensor, labels: torch.Tensor, lengths: list[int]) -> Batch:
    mask = lengths_mask(lengths, labels.shape[1])
    labels = labels.masked_fill(~mask, -100)
    change = torch.zeros_like(labels, dtype=torch.float32)
    change[:, 1:] = (labels[:, 1:] != labels[:, :-1]).float()
    boundary = torch.maximum(change, change.roll(-1, 1)) * mask
    return Batch([f"v{b}" for b in range(len(lengths))], {"rgb": features}, labels, boundary,
                 mask, [0] * len(lengths))


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_loss_has_every_term_and_backpropagates():
    stream = make_stream().train()
    labels = torch.tensor([[0, 0, 1, 1, 1, 3, 3, 2, 2], [2, 2, 2, 0, 0, 0, 0, 0, 0]])
    batch = make_batch(torch.randn(2, 7, 9), labels, [9, 6])
    out = stream.loss(batch.features["rgb"], batch, torch.ones(4), gens(0, 1))
    assert set(out.terms) == set(TERMS) and out.total.dim() == 0 and torch.isfinite(out.total)
    out.total.backward()
    assert all(p.grad is not None for p in stream.parameters())


def test_loss_draws_from_the_generators():
    stream = make_stream(small_config("model.encoder.dropout=0", "model.decoder.dropout=0",
                                      "model.encoder.channel_dropout=0",
                                      "model.encoder.frame_dropout=0")).train()
    labels = torch.tensor([[0, 0, 1, 1, 1, 3, 3, 2, 2]])
    batch = make_batch(torch.randn(1, 7, 9), labels, [9])
    a, b, c = (stream.loss(batch.features["rgb"], batch, None, gens(s)) for s in (1, 1, 2))
    assert torch.equal(a.total, b.total) and not torch.equal(a.total, c.total)
    with pytest.raises(ValueError, match="one generator per sample: 1 samples, 2 given"):
        stream.loss(batch.features["rgb"], batch, None, gens(1, 2))


def test_a_video_alone_equals_the_video_in_a_padded_batch_of_three():
    stream = make_stream().eval()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 13, generator=g)
    one = torch.ones(1, 13, dtype=torch.bool)
    alone = stream.predict_proba(x[None], one, gens(11), sampler())
    features = pad_batch(torch.randn(7, 21, generator=g), [x, torch.randn(7, 5, generator=g)], 21)
    batched = stream.predict_proba(features, lengths_mask([21, 13, 5], 21), gens(4, 11, 5),
                                   sampler())
    assert batched.shape == (3, 4, 21)
    torch.testing.assert_close(batched[1, :, :13], alone[0], atol=1e-5, rtol=1e-4)
    again = stream.predict_proba(x[None], one, gens(11), sampler())
    assert torch.equal(again, alone)
    other = stream.predict_proba(x[None], one, gens(12), sampler())
    assert not torch.equal(other, alone)
    torch.testing.assert_close(alone.sum(1), torch.ones(1, 13))


def test_predict_needs_one_generator_per_video():
    stream = make_stream().eval()
    with pytest.raises(ValueError, match="one generator per video"):
        stream.predict_proba(
            torch.randn(2, 7, 4), torch.ones(2, 4, dtype=torch.bool), gens(1), sampler()
        )


def synthetic_video(frames=64, num_classes=4, dim=8, seed=0):
    """Four segments; features = a class prototype + noise (informative)."""
    g = torch.Generator().manual_seed(seed)
    bounds = torch.tensor([0, 14, 30, 47, frames])
    labels = torch.zeros(frames, dtype=torch.long)
    order = torch.tensor([0, 2, 1, 3])
    for i in range(4):
        labels[bounds[i]:bounds[i + 1]] = order[i]
    prototypes = 2 * torch.randn(dim, num_classes, generator=g)
    features = prototypes[:, labels] + 0.3 * torch.randn(dim, frames, generator=g)
    return features, labels


def test_capability_ddim_learns_a_short_video():
    """A learning test: a few hundred steps make the DDIM prediction (near) perfect.

    Runs on one thread: the tensors are tiny, and on a busy machine OpenMP's thread hand-offs
    would cost more than the arithmetic (about 5 s of CPU time here).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        accuracy = train_and_predict_synthetic_video()
    finally:
        torch.set_num_threads(threads)
    assert accuracy >= 0.95, accuracy


def train_and_predict_synthetic_video() -> float:
    cfg = small_config(
        "model.encoder.width=16", "model.encoder.channel_dropout=0.1",
        "model.encoder.frame_dropout=0.1", "model.encoder.dropout=0.1",
        "model.decoder.width=16", "model.decoder.time_emb_dim=32",
        "eval.steps=4",
    )
    features, labels = synthetic_video()
    stream = make_stream(cfg, in_dim=8, num_classes=4)
    batch = make_batch(features[None].repeat(2, 1, 1), labels[None].repeat(2, 1), [64, 64])
    optimizer = torch.optim.Adam(stream.parameters(), lr=2e-3)
    generators = gens(0, 1)  # one per sample, advancing over the iterations
    with torch.random.fork_rng():
        torch.manual_seed(0)  # dropout
        stream.train()
        for _ in range(300):
            optimizer.zero_grad()
            stream.loss(batch.features["rgb"], batch, None, generators).total.backward()
            optimizer.step()
    stream.eval()
    probs = stream.predict_proba(
        features[None], torch.ones(1, 64, dtype=torch.bool), gens(0), make_sampler(cfg)
    )
    return (probs[0].argmax(0) == labels).float().mean().item()


def test_per_sample_generators_make_a_split_batch_equal_the_whole():
    stream = make_stream(small_config("model.encoder.dropout=0", "model.decoder.dropout=0",
                                      "model.encoder.channel_dropout=0",
                                      "model.encoder.frame_dropout=0")).train()
    labels = torch.tensor([[0, 0, 1, 1, 1, 3, 3, 2, 2], [2, 2, 2, 0, 0, 0, 0, 0, 0]])
    features = torch.randn(2, 7, 9)
    whole = make_batch(features, labels, [9, 6])
    total = stream.loss(features, whole, None, gens(5, 6)).total
    first, second = (  # the second unpadded: its draws are taken at its length 6
        Batch([f"v{b}"], {"rgb": features[b : b + 1, :, :n]}, whole.labels[b : b + 1, :n],
              whole.boundary[b : b + 1, :n], whole.mask[b : b + 1, :n], [0])
        for b, n in ((0, 9), (1, 6))
    )
    halves = (stream.loss(first.features["rgb"], first, None, gens(5)).total
              + stream.loss(second.features["rgb"], second, None, gens(6)).total) / 2
    torch.testing.assert_close(total, halves, atol=1e-6, rtol=1e-5)
