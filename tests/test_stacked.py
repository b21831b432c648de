"""The stacked two-stream inference path equals running the streams one after the other."""

import pytest
import torch

from _model_helpers import lengths_mask, small_config
from twostream_das.two_stream import TwoStreamModel


def make_model(*extra):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TwoStreamModel.from_config(small_config(*extra), {"rgb": 7, "flow": 5}, 4).eval()


@pytest.mark.parametrize("eta", ["1.0", "0.0"])
def test_stacked_streams_equal_sequential_streams_and_draw_the_same(eta):
    model = make_model(f"model.diffusion.eta={eta}")
    g = torch.Generator().manual_seed(1)
    features = {
        "rgb": torch.randn(3, 7, 23, generator=g),
        "flow": torch.randn(3, 5, 23, generator=g),
    }
    mask = lengths_mask([23, 17, 9], 23)
    runs = {}
    for options in (
        {"batch_streams": False, "precompute_cond": False},
        {"batch_streams": False},
        {"batch_streams": True},
    ):
        gens = [torch.Generator().manual_seed(s) for s in (5, 6, 7)]
        probs = model.predict_proba(features, mask, gens, **options)
        runs[tuple(options.items())] = (probs, [torch.randn(2, generator=x) for x in gens])
    (ref, ref_next), *others = runs.values()
    for probs, following in others:
        for stream in ("rgb", "flow"):
            for b, n in enumerate([23, 17, 9]):
                torch.testing.assert_close(
                    probs[stream][b, :, :n], ref[stream][b, :, :n], atol=1e-5, rtol=1e-4
                )
        assert all(torch.equal(a, b) for a, b in zip(following, ref_next, strict=True))  # same RNG


def test_streams_of_other_shapes_are_not_stacked():
    model = make_model()
    assert model._stackable()
    model.streams["flow"].decoder.blocks[0].conv.bias.data = torch.zeros(7)  # shapes differ
    assert not model._stackable()


def test_stacked_networks_are_reused_until_the_weights_change():
    model = make_model()
    g = torch.Generator().manual_seed(2)
    features = {s: torch.randn(2, d, 15, generator=g) for s, d in (("rgb", 7), ("flow", 5))}
    mask = lengths_mask([15, 11], 15)

    def predict(**options):
        gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
        return model.predict_proba(features, mask, gens, **options)["rgb"]

    first = predict()
    networks = model._stacked_cache["networks"][1]
    torch.testing.assert_close(predict(), first)
    assert model._stacked_cache["networks"][1] is networks  # no second stacking
    with torch.no_grad():  # an in-place change, as an optimiser step makes
        model.streams["rgb"].decoder.blocks[0].ffn[2].weight.add_(0.5)
    changed = predict()
    assert model._stacked_cache["networks"][1] is not networks
    assert not torch.allclose(changed, first, atol=1e-3)
    torch.testing.assert_close(changed, predict(batch_streams=False), atol=1e-5, rtol=1e-4)
    model.load_state_dict(make_model().state_dict())  # back to the first weights, in place
    torch.testing.assert_close(predict(), first, atol=1e-6, rtol=1e-5)
