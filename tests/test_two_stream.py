import pytest
import torch

from _model_helpers import lengths_mask, small_config
from twostream_das.config import STREAMS, load_config
from twostream_das.data.collate import Batch
from twostream_das.losses import TERMS
from twostream_das.two_stream import TwoStreamModel

DIMS = {"rgb": 7, "flow": 5}


def make_model(cfg=None, dims=None) -> TwoStreamModel:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TwoStreamModel.from_config(cfg or small_config(), dims or DIMS, 4)


def test_gtea_parameter_count_matches_the_research_code():
    """768-d Br-Prompt RGB, 1024-d I3D flow, 11 classes: DiffAct's architecture gives
    encoder 463,371 (rgb) / 479,755 (flow) + decoder 659,147 per stream = 2,261,420 ("2.26 M")."""
    model = TwoStreamModel.from_config(load_config("gtea"), {"rgb": 768, "flow": 1024}, 11)
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
    out = model.loss(batch, None, torch.Generator().manual_seed(0))
    expected = {f"{s}/{t}" for s in STREAMS for t in (*TERMS, "total")}
    assert set(out.terms) == expected
    torch.testing.assert_close(out.total.detach(), out.terms["rgb/total"] + out.terms["flow/total"])
    out.total.backward()


def test_predict_proba_returns_every_stream():
    model = make_model().eval()
    features = {s: torch.randn(2, d, 6) for s, d in DIMS.items()}
    gens = {s: [torch.Generator().manual_seed(i) for i in range(2)] for s in STREAMS}
    probs = model.predict_proba(features, lengths_mask([6, 4], 6), gens)
    assert set(probs) == set(STREAMS)
    assert all(p.shape == (2, 4, 6) for p in probs.values())


def test_generators_are_needed_per_stream():
    model = make_model().eval()
    features = {s: torch.randn(1, d, 6) for s, d in DIMS.items()}
    with pytest.raises(ValueError, match="stream -> generators"):
        model.predict_proba(features, lengths_mask([6], 6), [torch.Generator()])
