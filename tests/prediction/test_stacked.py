"""The stacked streams (prediction's strategy, chosen under a fast backend) equal running the
streams one after the other."""

import pytest
import torch

from _model_helpers import lengths_mask, sampler, small_config
from twostream_das.kernels import Backend, native, use_backend
from twostream_das.model.multi_stream import MultiStreamModel
from twostream_das.prediction.stacked import StackedStreams, choose_strategy

FAST_BACKENDS = [Backend.SHIFTED] + ([Backend.NATIVE] if native.available() else [])
FAST = [
    Backend.SHIFTED,
    pytest.param(
        Backend.NATIVE,
        marks=pytest.mark.skipif(not native.available(), reason="native kernels not built here"),
    ),
]


def make_model(*extra):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return MultiStreamModel.from_config(small_config(*extra), {"rgb": 7, "flow": 5}, 4).eval()


def stream_gens(seeds, streams=("rgb", "flow")):
    return {s: [torch.Generator().manual_seed(100 * i + x) for x in seeds]
            for i, s in enumerate(streams)}


@pytest.mark.parametrize("eta", ["1.0", "0.0"])
@pytest.mark.parametrize("samples", [1, 2])
def test_stacked_streams_equal_sequential_streams_and_draw_the_same(eta, samples):
    model = make_model(f"model.diffusion.eta={eta}")
    g = torch.Generator().manual_seed(1)
    features = {
        "rgb": torch.randn(3, 7, 23, generator=g),
        "flow": torch.randn(3, 5, 23, generator=g),
    }
    mask = lengths_mask([23, 17, 9], 23)
    runs = {}
    for backend in (Backend.REFERENCE, *FAST_BACKENDS):
        gens = stream_gens(range(5, 5 + 3 * samples))
        with use_backend(backend):
            out = model.sample(features, mask, gens, sampler(f"model.diffusion.eta={eta}"),
                               strategy=choose_strategy(model),
                               samples=samples)
        following = [torch.randn(2, generator=x) for s in gens for x in gens[s]]
        runs[backend] = (out, following)
    (ref, ref_next), *others = runs.values()
    for out, following in others:
        for stream in ("rgb", "flow"):
            assert out[stream].probs.shape == (samples, 3, 4, 23)
            for b, n in enumerate([23, 17, 9]):
                for field in ("probs", "trajectory_mean"):
                    torch.testing.assert_close(
                        getattr(out[stream], field)[:, b, :, :n],
                        getattr(ref[stream], field)[:, b, :, :n],
                        atol=1e-5, rtol=1e-4,
                    )
        assert all(torch.equal(a, b) for a, b in zip(following, ref_next, strict=True))  # same RNG


def test_each_sample_is_the_one_sample_run_with_its_generator():
    """Sample k of a K-sample pass = a one-sample pass with sample k's generators: the samples
    of a video are independent draws, batched."""
    model = make_model()
    g = torch.Generator().manual_seed(4)
    features = {s: torch.randn(2, d, 19, generator=g) for s, d in (("rgb", 7), ("flow", 5))}
    mask = lengths_mask([19, 12], 19)
    three = model.sample(features, mask, stream_gens(range(6)), sampler(), samples=3,
                         strategy=StackedStreams)
    for k in range(3):
        one = model.sample(features, mask, stream_gens(range(2 * k, 2 * k + 2)), sampler(),
                           strategy=StackedStreams)
        for s in ("rgb", "flow"):
            for b, n in enumerate([19, 12]):
                torch.testing.assert_close(three[s].probs[k, b, :, :n], one[s].probs[0, b, :, :n],
                                           atol=1e-5, rtol=1e-4)
    assert not torch.allclose(three["rgb"].probs[0], three["rgb"].probs[1], atol=1e-3)


def test_the_number_of_steps_is_chosen_per_call():
    model = make_model()  # holds no number of steps: the sampler brings it
    features = {"rgb": torch.randn(1, 7, 9), "flow": torch.randn(1, 5, 9)}
    mask = lengths_mask([9], 9)
    four = model.sample(features, mask, stream_gens([1]), sampler("eval.steps=4"),
                        strategy=StackedStreams)
    two = model.sample(features, mask, stream_gens([1]), sampler("eval.steps=2"),
                       strategy=StackedStreams)
    assert not torch.allclose(two["rgb"].probs, four["rgb"].probs, atol=1e-4)
    sequential = model.sample(features, mask, stream_gens([1]), sampler("eval.steps=2"))
    torch.testing.assert_close(sequential["flow"].probs, two["flow"].probs, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="num_inference_steps"):
        sampler().set_timesteps(0)


def test_prediction_stacks_in_eval_mode_under_a_fast_backend_only():
    model = make_model()
    for backend in FAST_BACKENDS:
        with use_backend(backend):
            assert choose_strategy(model) is StackedStreams
            assert choose_strategy(model.train()) is None  # training runs the modules
            model.eval()
    with use_backend(Backend.REFERENCE):  # the spec: the streams one after the other
        assert choose_strategy(model) is None


def test_streams_of_other_shapes_are_not_stacked():
    model = make_model()
    assert model.stackable()
    model.streams["flow"].decoder.blocks[0].conv.bias.data = torch.zeros(7)  # shapes differ
    assert not model.stackable()
    with use_backend(Backend.SHIFTED):
        assert choose_strategy(model) is None


@pytest.mark.parametrize("backend", FAST)
def test_the_stacked_weights_are_built_per_call_so_changed_weights_count(backend):
    model = make_model()
    g = torch.Generator().manual_seed(2)
    features = {s: torch.randn(2, d, 15, generator=g) for s, d in (("rgb", 7), ("flow", 5))}
    mask = lengths_mask([15, 11], 15)

    def predict(chosen=backend):
        with use_backend(chosen):
            return model.predict_proba(features, mask, stream_gens((3, 4)), sampler(),
                                       choose_strategy(model))["rgb"]

    first = predict()
    torch.testing.assert_close(predict(), first)
    with torch.no_grad():  # an in-place change, as an optimiser step makes
        model.streams["rgb"].decoder.blocks[0].ffn[2].weight.add_(0.5)
    changed = predict()
    assert not torch.allclose(changed, first, atol=1e-3)
    torch.testing.assert_close(changed, predict(Backend.REFERENCE), atol=1e-5, rtol=1e-4)
    model.load_state_dict(make_model().state_dict())  # back to the first weights, in place
    torch.testing.assert_close(predict(), first, atol=1e-6, rtol=1e-5)


def end_heavy_model(outside):
    """The small model with every block's q bias +3 and k bias -3: every score is about -25 (in
    both streams), where DiffAct's handling of the window positions without a key leaves the
    frames near the sequence ends almost no attention, far from exact masking."""
    model = make_model(f"model.attention_outside={outside}")
    with torch.no_grad():
        for stream in model.streams.values():
            for block in (*stream.encoder.blocks, *stream.decoder.blocks):
                block.qkv.bias[: block.width] = 3.0
                block.qkv.bias[block.width : 2 * block.width] = -3.0
    return model


@pytest.mark.parametrize("samples", [1, 2])
def test_diffact_streams_are_stacked_and_equal_the_streams_one_after_the_other(samples):
    """Converted DiffAct checkpoints (``model.attention_outside = diffact``): every backend has
    that attention, so prediction stacks their streams; the stacked run equals the streams one
    after the other, under every fast backend and the reference."""
    model = end_heavy_model("diffact")
    assert model.stackable()
    g = torch.Generator().manual_seed(6)
    features = {s: torch.randn(3, d, 23, generator=g) for s, d in (("rgb", 7), ("flow", 5))}
    lengths = [23, 9, 3]  # padded; 3 frames: less than the widest reach (2 x 4 frames a side)
    mask = lengths_mask(lengths, 23)

    def run(backend, chosen, strategy):
        with use_backend(backend):
            return chosen.sample(features, mask, stream_gens(range(5, 5 + 3 * samples)),
                                 sampler(), strategy=strategy, samples=samples)  # fmt: skip

    want = run(Backend.REFERENCE, model, None)
    for backend in FAST_BACKENDS:
        with use_backend(backend):
            assert choose_strategy(model) is StackedStreams
        for strategy in (StackedStreams, None):
            got = run(backend, model, strategy)
            for stream in ("rgb", "flow"):
                for b, n in enumerate(lengths):
                    torch.testing.assert_close(got[stream].probs[:, b, :, :n],
                                               want[stream].probs[:, b, :, :n],
                                               atol=1e-5, rtol=1e-4)  # fmt: skip
    exact = run(Backend.REFERENCE, end_heavy_model("exact"), None)  # the same weights
    assert (exact["rgb"].probs - want["rgb"].probs).abs().max() > 0.05
