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
