import dataclasses

import numpy as np
import pytest
import torch

from _tiny import CLASSES, TEST_VIDEOS, tiny_overrides
from twostream_das.choices import PostprocessChoice
from twostream_das.config import PostprocessKind, load_config
from twostream_das.data.dataset import load_videos, offset_views
from twostream_das.data.layout import read_mapping
from twostream_das.data.temporal import average_views
from twostream_das.inference import (
    _predict_views,
    decide,
    decide_video,
    load_model,
    predict,
    predict_probabilities,
)
from twostream_das.workflows.training import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(tiny_root, tmp_path_factory):
    root = tiny_root
    cfg = load_config("demo", tiny_overrides(root, "train.epochs=1"))
    out = tmp_path_factory.mktemp("run") / "run"
    train(cfg, 1, out, quiet=True)
    loaded = load_model(out / "checkpoints" / "best.pt", CPU)
    videos = load_videos(cfg.dataset, TEST_VIDEOS[1] + ["v5"], read_mapping(root / "mapping.txt"))
    return loaded, videos


def test_probabilities_cover_every_frame(setup):
    loaded, videos = setup
    out = list(predict_probabilities(loaded.model, videos, loaded.config, CPU))
    assert [v.name for v in out] == [v.name for v in videos]
    for pred, video in zip(out, videos, strict=True):
        for stream in ("rgb", "flow"):
            p = pred.probs[stream]
            assert p.shape == (len(CLASSES), len(video.labels)) and p.dtype == np.float32
            np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-4)


def test_a_video_does_not_depend_on_its_batch(setup):
    loaded, videos = setup
    together = list(predict_probabilities(loaded.model, videos, loaded.config, CPU))
    alone = list(predict_probabilities(loaded.model, videos[1:2], loaded.config, CPU))
    again = list(predict_probabilities(loaded.model, videos[1:2], loaded.config, CPU))
    for stream in ("rgb", "flow"):
        np.testing.assert_array_equal(alone[0].probs[stream], again[0].probs[stream])
        np.testing.assert_allclose(together[1].probs[stream], alone[0].probs[stream], atol=1e-4)


def test_sample_rate_averages_offsets_at_the_subsampled_rate(setup):
    loaded, videos = setup
    cfg = dataclasses.replace(
        loaded.config, dataset=dataclasses.replace(loaded.config.dataset, sample_rate=3)
    )
    out = list(predict_probabilities(loaded.model, videos, cfg, CPU))
    for pred, video in zip(out, videos, strict=True):
        full = len(video.labels)
        assert pred.sample_rate == 3 and pred.num_frames == full
        assert pred.probs["rgb"].shape[1] == full // 3  # cropped to the shortest view
        np.testing.assert_allclose(pred.probs["flow"].sum(axis=0), 1.0, atol=1e-4)
        assert pred.full_rate(pred.probs["rgb"]).shape == (len(CLASSES), full)
        post = PostprocessChoice(PostprocessKind.MEDIAN, 3)
        decision = decide_video(pred, {"rgb": 0.5, "flow": 0.5}, post)
        assert decision.labels.shape == (full,)
        assert decision.fused_probs.shape == (len(CLASSES), full)
        assert decision.stream_labels["flow"].shape == (full,)
    # the ensemble is the views' outputs (batched as the loop batches them) cropped and averaged
    views = offset_views(videos[0], 3, cfg.dataset.boundary_sigma)
    per_view = _predict_views(loaded.model, views, cfg, CPU)
    expected = average_views([p["samples"]["rgb"] for p in per_view]).mean(axis=0)  # K samples
    np.testing.assert_allclose(out[0].probs["rgb"], expected, atol=1e-4)


def test_decide_fuses_then_postprocesses(setup):
    loaded, videos = setup
    none = PostprocessChoice(PostprocessKind.NONE, 1)
    probs = next(predict_probabilities(loaded.model, videos[:1], loaded.config, CPU)).probs
    only_rgb = decide(probs, {"rgb": 1.0, "flow": 0.0}, none)
    np.testing.assert_array_equal(only_rgb.labels, probs["rgb"].argmax(axis=0))
    np.testing.assert_array_equal(only_rgb.stream_labels["flow"], probs["flow"].argmax(axis=0))
    both = decide(probs, {"rgb": 0.3, "flow": 0.7}, none)
    np.testing.assert_array_equal(both.labels, (0.3 * probs["rgb"] + 0.7 * probs["flow"]).argmax(0))


def test_predict_uses_the_selected_weights(setup):
    loaded, videos = setup
    assert loaded.checkpoint.selection is not None
    preds = list(
        predict(loaded.model, videos, loaded.config, loaded.fusion_weights, loaded.postprocess, CPU)
    )
    assert all(p.decision.labels.shape == (p.video.num_frames,) for p in preds)


def test_a_renamed_video_gets_the_same_prediction(setup):
    """The DDIM noise is seeded by the features, not the file name (issue 14)."""
    loaded, videos = setup
    renamed = [dataclasses.replace(videos[0], name="another_name")]
    a = next(predict_probabilities(loaded.model, videos[:1], loaded.config, CPU))
    b = next(predict_probabilities(loaded.model, renamed, loaded.config, CPU))
    assert b.name == "another_name"
    for stream in ("rgb", "flow"):
        np.testing.assert_array_equal(a.probs[stream], b.probs[stream])


def test_eval_seed_changes_the_noise(setup):
    loaded, videos = setup
    cfg = loaded.config
    other = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, seed=cfg.eval.seed + 1))
    a = next(predict_probabilities(loaded.model, videos[:1], loaded.config, CPU))
    b = next(predict_probabilities(loaded.model, videos[:1], other, CPU))
    assert not np.array_equal(a.probs["rgb"], b.probs["rgb"])


def with_eval(cfg, **changes):
    return dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **changes))


def test_batched_folder_equals_one_video_at_a_time(setup):
    """Several videos of different lengths per batch, grouped by length: the same labels as
    one video at a time, probabilities to float tolerance, in the order of the videos."""
    loaded, videos = setup
    mixed = [*videos, dataclasses.replace(videos[0], name="short",
             features={s: f[:, :17] for s, f in videos[0].features.items()},
             labels=videos[0].labels[:17])]  # fmt: skip
    one = list(predict_probabilities(loaded.model, mixed, with_eval(loaded.config, batch_size=1),
                                     CPU))
    batched = list(predict_probabilities(loaded.model, mixed,
                                         with_eval(loaded.config, batch_size=3), CPU))
    assert [v.name for v in batched] == [v.name for v in mixed]
    for a, b in zip(one, batched, strict=True):
        for stream in ("rgb", "flow"):
            np.testing.assert_array_equal(a.probs[stream].argmax(0), b.probs[stream].argmax(0))
            np.testing.assert_allclose(a.probs[stream], b.probs[stream], atol=1e-5)


def test_samples_are_kept_and_averaged_and_sample_0_is_the_one_sample_prediction(setup):
    loaded, videos = setup
    one = next(predict_probabilities(loaded.model, videos[:1], loaded.config, CPU))
    three = next(predict_probabilities(loaded.model, videos[:1],
                                       with_eval(loaded.config, samples=3), CPU))
    frames = videos[0].num_frames
    for stream in ("rgb", "flow"):
        assert three.samples[stream].shape == (3, len(CLASSES), frames)
        np.testing.assert_allclose(three.probs[stream], three.samples[stream].mean(0), atol=1e-6)
        np.testing.assert_allclose(three.samples[stream][0], one.probs[stream], atol=1e-5)
        assert three.trajectory[stream].shape == (len(CLASSES), frames)
        np.testing.assert_allclose(three.trajectory[stream].sum(0), 1.0, atol=1e-4)
    assert not np.allclose(three.samples["rgb"][0], three.samples["rgb"][1], atol=1e-3)


def test_samples_per_pass_is_one_on_a_cpu_and_all_elsewhere_unless_set():
    from twostream_das.config import load_config
    from twostream_das.inference import samples_per_pass

    auto = load_config("demo")
    assert auto.eval.samples_per_pass is None
    assert samples_per_pass(auto, torch.device("cpu")) == 1
    assert samples_per_pass(auto, torch.device("cuda", 0)) is None  # a device object only
    two = load_config("demo", ["eval.samples_per_pass=2"])
    assert samples_per_pass(two, torch.device("cpu")) == 2
    assert samples_per_pass(two, torch.device("cuda", 0)) == 2


def test_views_per_batch_is_one_on_a_cpu_and_four_elsewhere_unless_set():
    from twostream_das.config import load_config
    from twostream_das.inference import views_per_batch

    auto = load_config("gtea")
    assert auto.eval.batch_size is None
    assert views_per_batch(auto, torch.device("cpu")) == 1
    assert views_per_batch(auto, torch.device("cuda", 0)) == 4
    three = load_config("gtea", ["eval.batch_size=3"])
    assert views_per_batch(three, torch.device("cpu")) == 3
