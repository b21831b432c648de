import pytest
import torch

from _model_helpers import lengths_mask, sampler, small_config
from twostream_das.config import load_config
from twostream_das.data.collate import Batch
from twostream_das.model.losses import TERMS
from twostream_das.model.multi_stream import MultiStreamModel, StreamByStream
from twostream_das.prediction.stacked import StackedStreams

DIMS = {"rgb": 7, "flow": 5}
STREAMS = tuple(DIMS)
ONE = "dataset.streams={i3d: {folder: features}}"
THREE = "dataset.streams={rgb: {folder: a}, flow: {folder: b}, pose: {folder: c}}"


def make_model(cfg=None, dims=None) -> MultiStreamModel:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return MultiStreamModel.from_config(cfg or small_config(), dims or DIMS, 4)


def test_gtea_parameter_count_matches_the_research_code():
    """768-d Br-Prompt RGB, 1024-d I3D flow, 11 classes: DiffAct's architecture gives
    encoder 463,371 (rgb) / 479,755 (flow) + decoder 659,147 per stream = 2,261,420 ("2.26 M")."""
    model = MultiStreamModel.from_config(load_config("gtea"), {"rgb": 768, "flow": 1024}, 11)
    assert sum(p.numel() for p in model.parameters()) == 2_261_420
    decoder = model.streams["rgb"].decoder
    assert sum(p.numel() for p in decoder.parameters()) == 659_147


def test_streams_have_their_own_dims_and_weights():
    model = make_model()
    assert list(model.streams) == list(STREAMS)
    assert model.streams["rgb"].in_dim == 7 and model.streams["flow"].in_dim == 5
    rgb_head = model.streams["rgb"].decoder.head.weight
    assert rgb_head.data_ptr() != model.streams["flow"].decoder.head.weight.data_ptr()
    with pytest.raises(ValueError, match="in_dims"):
        make_model(dims={"rgb": 7})


def test_loss_is_the_sum_of_the_stream_losses():
    model = make_model().train()
    labels = torch.tensor([[0, 0, 1, 1, 2, 2, 3], [1, 1, 1, 0, 0, -100, -100]])
    mask = lengths_mask([7, 5], 7)
    features = {s: torch.randn(2, d, 7) for s, d in DIMS.items()}
    batch = Batch(["a", "b"], features, labels, torch.zeros(2, 7), mask, [0, 0])
    out = model.loss(batch, None, [torch.Generator().manual_seed(b) for b in range(2)])
    expected = {f"{s}/{t}" for s in STREAMS for t in (*TERMS, "total")}
    assert set(out.terms) == expected
    torch.testing.assert_close(out.total.detach(), out.terms["rgb/total"] + out.terms["flow/total"])
    out.total.backward()


def test_predict_proba_returns_every_stream():
    model = make_model().eval()
    features = {s: torch.randn(2, d, 6) for s, d in DIMS.items()}
    gens = {s: [torch.Generator().manual_seed(i) for i in range(2)] for s in STREAMS}
    probs = model.predict_proba(features, lengths_mask([6, 4], 6), gens, sampler())
    assert set(probs) == set(STREAMS)
    assert all(p.shape == (2, 4, 6) for p in probs.values())


def test_generators_are_needed_per_stream():
    model = make_model().eval()
    features = {s: torch.randn(1, d, 6) for s, d in DIMS.items()}
    with pytest.raises(ValueError, match="stream -> generators"):
        model.predict_proba(features, lengths_mask([6], 6), [torch.Generator()], sampler())


def _gens(names, count, seed=0):
    return {s: [torch.Generator().manual_seed(seed + i) for i in range(count)] for s in names}


def test_one_stream_model_is_that_stream_alone():
    cfg = small_config(ONE)
    model = make_model(cfg, {"i3d": 6}).eval()
    assert model.stream_names == ["i3d"] and not model.stackable()
    features = {"i3d": torch.randn(2, 6, 9)}
    mask = lengths_mask([9, 5], 9)
    probs = model.predict_proba(features, mask, _gens(["i3d"], 2), sampler())
    alone = model.streams["i3d"].predict_proba(
        features["i3d"], mask, _gens(["i3d"], 2)["i3d"], sampler()
    )
    assert list(probs) == ["i3d"]
    torch.testing.assert_close(probs["i3d"], alone, rtol=0, atol=0)
    labels = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3, 3], [1, 1, 1, 0, 0, -100, -100, -100, -100]])
    batch = Batch(["a", "b"], features, labels, torch.zeros(2, 9), mask, [0, 0])
    out = model.train().loss(batch, None, [torch.Generator().manual_seed(b) for b in range(2)])
    torch.testing.assert_close(out.total.detach(), out.terms["i3d/total"])


def test_three_streams_stack_like_they_run_one_after_the_other():
    dims = {"rgb": 7, "flow": 5, "pose": 3}
    model = make_model(small_config(THREE), dims).eval()
    assert model.stream_names == ["rgb", "flow", "pose"] and model.stackable()
    features = {s: torch.randn(2, d, 8) for s, d in dims.items()}
    mask = lengths_mask([8, 6], 8)
    stacked = model.predict_proba(features, mask, _gens(dims, 2), sampler(), StackedStreams)
    plain = model.predict_proba(features, mask, _gens(dims, 2), sampler())  # one by one
    assert list(stacked) == list(dims)
    for s in dims:
        torch.testing.assert_close(stacked[s], plain[s], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["ddim", "dpmpp_2m", "dpmpp_2m_sde"])
def test_samples_in_passes_equal_one_pass(name):
    """K = 5 samples in passes of 1, 2 (2 + 2 + 1) or 5: the same rows, stacked or one stream
    after the other, because each (video, stream, sample) row has its own generator; one
    sampler object serves every pass (a multistep sampler keeps each run's history apart)."""
    model = make_model().eval()
    features = {s: torch.randn(2, d, 8) for s, d in DIMS.items()}
    mask = lengths_mask([8, 6], 8)
    shared = sampler(f"eval.sampler={name}")
    for strategy in (StackedStreams, StreamByStream, None):
        whole = model.sample(features, mask, _gens(DIMS, 10), shared, samples=5,
                             strategy=strategy)
        for per_pass in (1, 2):
            parts = model.sample(features, mask, _gens(DIMS, 10), shared, samples=5,
                                 samples_per_pass=per_pass, strategy=strategy)
            for s in DIMS:
                assert parts[s].probs.shape == (5, 2, 4, 8)
                torch.testing.assert_close(parts[s].probs, whole[s].probs, rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(parts[s].trajectory_mean, whole[s].trajectory_mean,
                                           rtol=1e-5, atol=1e-6)


def _joint(weights, rule="sum"):
    from twostream_das.config import FusionRule
    from twostream_das.prediction.fusion import FusionMethod, JointFusion

    return JointFusion(tuple(weights), weights, FusionMethod(FusionRule(rule)))


def test_joint_sampling_with_one_stream_weighted_is_that_stream_alone():
    """Weights (1, 0): the consensus is the RGB stream's own x0 estimate at every step, so the
    joint sample is RGB's separate sample (same generators), stacked or stream by stream."""
    model = make_model().eval()
    features = {s: torch.randn(2, d, 8) for s, d in DIMS.items()}
    mask = lengths_mask([8, 6], 8)
    for strategy in (StackedStreams, StreamByStream):
        alone = model.sample(features, mask, _gens(DIMS, 2), sampler(), strategy=strategy)
        for rule in ("sum", "product"):
            joint = model.sample_joint(features, mask, _gens(DIMS, 2),
                                       _joint({"rgb": 1.0, "flow": 0.0}, rule), sampler(),
                                       strategy=strategy)
            torch.testing.assert_close(joint.probs, alone["rgb"].probs, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(joint.trajectory_mean, alone["rgb"].trajectory_mean,
                                       rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["ddim", "dpmpp_2m_sde"])
def test_joint_sampling_fuses_every_step_and_runs_alike_stacked_or_not(name):
    """Equal weights: the output is a distribution per frame, differs from both streams alone
    (their updates continued from the consensus), and the stacked pass and the streams one
    after the other agree, also in passes of one sample."""
    model = make_model().eval()
    features = {s: torch.randn(2, d, 8) for s, d in DIMS.items()}
    mask = lengths_mask([8, 6], 8)
    fusion = _joint({"rgb": 0.5, "flow": 0.5}, "product")
    chosen = sampler(f"eval.sampler={name}")
    stacked = model.sample_joint(features, mask, _gens(DIMS, 6), fusion, chosen, samples=3,
                                 strategy=StackedStreams)
    plain = model.sample_joint(features, mask, _gens(DIMS, 6), fusion, chosen, samples=3,
                               samples_per_pass=1)  # the streams one after the other
    assert stacked.probs.shape == (3, 2, 4, 8)
    torch.testing.assert_close(stacked.probs, plain.probs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stacked.probs.sum(dim=2), torch.ones(3, 2, 8))
    alone = model.sample(features, mask, _gens(DIMS, 6), chosen, samples=3)
    for s in DIMS:
        assert (stacked.probs - alone[s].probs).abs().max() > 1e-3


def test_joint_sampling_refuses_streams_of_another_order():
    model = make_model().eval()
    features = {s: torch.randn(1, d, 5) for s, d in DIMS.items()}
    with pytest.raises(ValueError, match="model's streams"):
        model.sample_joint(features, lengths_mask([5], 5), _gens(DIMS, 1),
                           _joint({"flow": 0.5, "rgb": 0.5}), sampler())


@pytest.mark.parametrize("stacked", [True, False])
def test_one_encoding_serves_the_separate_and_the_joint_run(stacked):
    """``encode`` once, then ``sample`` and ``sample_joint`` on it: the same samples as each
    run encoding for itself, with the streams' encoders run once instead of twice."""
    model = make_model().eval()
    features = {s: torch.randn(2, d, 8) for s, d in DIMS.items()}
    mask = lengths_mask([8, 6], 8)
    fusion, chosen = _joint({"rgb": 0.5, "flow": 0.5}), sampler()
    encodings = []  # the streams' encoders run once per strategy built (stacked or not)

    def counted(*args):
        encodings.append(1)
        return (StackedStreams if stacked else StreamByStream)(*args)

    own = model.sample(features, mask, _gens(DIMS, 4), chosen, samples=2, strategy=counted)
    own_joint = model.sample_joint(features, mask, _gens(DIMS, 4), fusion, chosen, samples=2,
                                   strategy=counted)  # fmt: skip
    assert len(encodings) == 2
    encoded = model.encode(features, mask, chosen, counted)
    shared = model.sample(features, mask, _gens(DIMS, 4), chosen, samples=2, encoded=encoded)
    shared_joint = model.sample_joint(features, mask, _gens(DIMS, 4), fusion, chosen,
                                      samples=2, encoded=encoded)  # fmt: skip
    assert len(encodings) == 3
    for s in DIMS:
        torch.testing.assert_close(shared[s].probs, own[s].probs, rtol=0, atol=0)
        torch.testing.assert_close(shared[s].trajectory_mean, own[s].trajectory_mean,
                                   rtol=0, atol=0)  # fmt: skip
    torch.testing.assert_close(shared_joint.probs, own_joint.probs, rtol=0, atol=0)
