import dataclasses
import re

import numpy as np
import pytest
import torch

from _tiny import CLASSES, TEST_VIDEOS, tiny_overrides
from twostream_das.choices import PostprocessChoice
from twostream_das.config import FAST_SAMPLING, PostprocessKind, Views, load_config
from twostream_das.data.dataset import View, load_videos, offset_views
from twostream_das.data.layout import read_mapping
from twostream_das.data.temporal import average_views
from twostream_das.errors import ConfigError
from twostream_das.prediction.inference import (
    _predict_views,
    decide,
    decide_video,
    joint_fusion,
    load_model,
    predict,
    predict_probabilities,
    with_sampling,
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


def test_the_middle_view_alone_is_that_view_brought_to_full_rate(setup):
    """eval.views = middle at r = 3: only offset 1 is sampled, as under all (same generators);
    its probabilities keep its own length and are restored with frame j at 1 + 3 j."""
    loaded, videos = setup
    cfg = dataclasses.replace(
        loaded.config, dataset=dataclasses.replace(loaded.config.dataset, sample_rate=3)
    )
    middle = with_sampling(cfg, views="middle")
    assert middle.eval.views is Views.MIDDLE
    out = list(predict_probabilities(loaded.model, videos, middle, CPU))
    for pred, video in zip(out, videos, strict=True):
        full = len(video.labels)
        assert pred.probs["rgb"].shape[1] == len(range(1, full, 3))  # frames 1, 4, 7, ...
        restored = pred.full_rate(pred.probs["rgb"])  # (C, T)
        assert restored.shape == (len(CLASSES), full)
        for t in (0, 1, 2, 3, 4, 5, full - 1):  # the nearest of frames 1, 4, 7, ...: t // 3
            j = min(t // 3, pred.probs["rgb"].shape[1] - 1)
            np.testing.assert_array_equal(restored[:, t], pred.probs["rgb"][:, j])
        decision = decide_video(pred, {"rgb": 0.5, "flow": 0.5},
                                PostprocessChoice(PostprocessKind.MEDIAN, 3))
        assert decision.labels.shape == (full,)
    views = offset_views(videos[0], 3, cfg.dataset.boundary_sigma)  # the views all samples
    per_view = _predict_views(loaded.model, views, cfg, CPU)
    np.testing.assert_allclose(
        out[0].probs["flow"], per_view[1]["samples"]["flow"].mean(axis=0), atol=1e-5
    )


def test_with_sampling_applies_fast_then_what_is_given_and_checks_each_key(setup):
    cfg = setup[0].config
    fast = with_sampling(cfg, fast=True)
    assert (fast.eval.sampler, fast.eval.steps, fast.eval.samples, fast.eval.views.value) == (
        FAST_SAMPLING["sampler"], FAST_SAMPLING["steps"], FAST_SAMPLING["samples"],
        FAST_SAMPLING["views"])
    assert (fast.eval.sampler, fast.eval.steps, fast.eval.samples) == ("ddim", 2, 4)
    mine = with_sampling(cfg, 7, 2, sampler="dpmpp_2m_sde", views="all", fast=True)
    assert (mine.eval.sampler, mine.eval.steps, mine.eval.samples, mine.eval.views) == (
        "dpmpp_2m_sde", 7, 2, Views.ALL)
    assert with_sampling(cfg) is cfg
    for kwargs, message in (
        ({"sampler": "dpm"}, "eval.sampler = 'dpm' is not a sampler; expected one of ddim, "
                             "dpmpp_2m, dpmpp_2m_sde"),
        ({"views": "first"}, "eval.views = 'first' is invalid; expected one of all, middle"),
        ({"steps": True}, "eval.steps = True is invalid; expected int"),
        ({"steps": 1001}, "eval.steps = 1001 is invalid"),
        ({"sampler": 3}, "eval.sampler = 3 is invalid; expected str"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            with_sampling(cfg, **kwargs)


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
    """The DDIM noise is seeded by the features, not the file name."""
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


def test_samples_per_pass_fills_a_cpu_pass_and_is_all_elsewhere_unless_set():
    from twostream_das.config import EVAL_CPU_PASS_FRAMES
    from twostream_das.prediction.inference import samples_per_pass

    assert EVAL_CPU_PASS_FRAMES == 1024
    auto = load_config("demo")
    assert auto.eval.samples_per_pass is None
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)  # a device object only
    assert samples_per_pass(auto, cpu, 1, 1500) == 1  # a GTEA-length view: one per pass
    assert samples_per_pass(auto, cpu, 1, 100) == 10  # 1024 // 100 (sample_passes caps at K)
    assert samples_per_pass(auto, cpu, 3, 100) == 3  # 1024 // 300
    assert samples_per_pass(auto, cpu, 11, 100) == 1  # the batch alone is over the budget
    assert samples_per_pass(auto, cuda, 1, 100) is None
    two = load_config("demo", ["eval.samples_per_pass=2"])
    assert samples_per_pass(two, cpu, 1, 100) == 2
    assert samples_per_pass(two, cuda, 1, 100) == 2


def test_batch_plan_fills_a_cpu_batch_by_frames_and_is_four_views_elsewhere_unless_set():
    from twostream_das.prediction.inference import BatchPlan, batch_plan

    auto = load_config("gtea")
    assert auto.eval.batch_size is None
    assert batch_plan(auto, torch.device("cpu")) == BatchPlan(1024, 1024)
    assert batch_plan(auto, torch.device("cuda", 0)) == BatchPlan(4, None)
    three = load_config("gtea", ["eval.batch_size=3"])
    assert batch_plan(three, torch.device("cpu")) == BatchPlan(3, None)


def _view(frames: int) -> View:
    features = {"rgb": torch.zeros(2, frames)}
    return View(f"v{frames}", features, None, torch.zeros(frames), 0)


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        # longest first; 600 + 500 pads to 1200 > 1000, so 600 goes alone; 500, 400 pad to
        # 1000; 300, 200, 100 to 900; 1500 is over the budget on its own and still runs
        ((10, 1000), [[1500], [600], [500, 400], [300, 200, 100]]),
        ((2, 1000), [[1500], [600], [500, 400], [300, 200], [100]]),
        ((4, None), [[1500, 600, 500, 400], [300, 200, 100]]),
    ],
)
def test_sorted_batches_cut_by_views_and_padded_frames(plan, expected):
    from twostream_das.prediction.inference import BatchPlan, _sorted_batches

    items = [(i, _view(n)) for i, n in enumerate([300, 1500, 100, 500, 200, 600, 400])]
    batches = list(_sorted_batches(items, BatchPlan(*plan)))
    assert [[s.num_frames for _, s in b] for b in batches] == expected


def test_length_batches_window_closes_at_group_batches_frames():
    """Views are sorted by length within windows of GROUP_BATCHES batches' frames: a longer
    view after the window does not go first."""
    from twostream_das.prediction.inference import GROUP_BATCHES, BatchPlan, _length_batches

    assert GROUP_BATCHES == 8
    items = [(i, _view(n)) for i, n in enumerate([60] * 16 + [100])]  # 960 frames, then 100
    batches = list(_length_batches(items, BatchPlan(100, 120)))  # the window closes at 960
    pairs = [[2 * k, 2 * k + 1] for k in range(8)]
    assert [[i for i, _ in b] for b in batches] == [*pairs, [16]]


def test_the_separate_and_the_joint_run_share_one_encoding_per_batch(setup, monkeypatch):
    """With fusion inside the sampler, ``predict`` samples the streams alone and jointly: the
    encoders run once per batch for both, and each run gives what it gives alone."""
    loaded, videos = setup
    model, cfg = loaded.model, loaded.config
    joint = joint_fusion(cfg, model.stream_names, {"rgb": 0.5, "flow": 0.5})
    separate_only = list(predict_probabilities(model, videos, cfg, CPU))
    joint_only = list(predict_probabilities(model, videos, cfg, CPU, joint=joint, separate=False))
    encodings = []
    encode = model.encode
    monkeypatch.setattr(model, "encode", lambda *a, **k: encodings.append(1) or encode(*a, **k))
    both = list(predict_probabilities(model, videos, cfg, CPU, joint=joint))
    assert 0 < len(encodings) <= sum(cfg.dataset.sample_rate for _ in videos)  # one per batch
    for got, alone, fused in zip(both, separate_only, joint_only, strict=True):
        for stream in model.stream_names:
            np.testing.assert_allclose(got.probs[stream], alone.probs[stream], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got.joint_samples, fused.joint_samples, rtol=0, atol=1e-6)
