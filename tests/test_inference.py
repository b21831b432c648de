import dataclasses

import numpy as np
import pytest
import torch

from _tiny import CLASSES, TEST_VIDEOS, tiny_overrides
from twostream_das.config import PostprocessKind, load_config
from twostream_das.data.dataset import load_videos
from twostream_das.data.layout import read_mapping
from twostream_das.inference import (
    PostprocessChoice,
    decide,
    load_model,
    predict,
    predict_probabilities,
    stack_streams,
)
from twostream_das.training import train

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


def test_stack_streams_limit_counts_streams_videos_frames_and_decoder_width():
    cfg = load_config("gtea", ["eval.stack_streams_max=96000"])  # decoder width 24
    assert stack_streams(cfg, (1, 2000))  # 2 streams x 1 x 2000 x 24 = 96,000
    assert not stack_streams(cfg, (1, 2001))
    assert not stack_streams(cfg, (2, 1001))  # 96,096
    never = load_config("gtea", ["eval.stack_streams_max=0"])
    assert not stack_streams(never, (1, 1))
    assert stack_streams(load_config("gtea"), (4, 1500))  # 288,000 <= 500,000 (the default)


def test_stacked_and_sequential_streams_agree(setup, monkeypatch):
    loaded, videos = setup
    never = dataclasses.replace(
        loaded.config, eval=dataclasses.replace(loaded.config.eval, stack_streams_max=0)
    )
    calls = []
    stacked_pass = type(loaded.model)._predict_stacked
    monkeypatch.setattr(
        type(loaded.model), "_predict_stacked", lambda *a: calls.append(1) or stacked_pass(*a)
    )
    stacked = list(predict_probabilities(loaded.model, videos, loaded.config, CPU))
    assert calls and (used := len(calls))
    sequential = list(predict_probabilities(loaded.model, videos, never, CPU))
    assert len(calls) == used  # no stacked pass with stack_streams_max=0
    for a, b in zip(stacked, sequential, strict=True):
        for stream in ("rgb", "flow"):
            np.testing.assert_allclose(a.probs[stream], b.probs[stream], atol=1e-5)


def test_sample_rate_averages_offsets_at_full_frame_rate(setup):
    loaded, videos = setup
    cfg = dataclasses.replace(
        loaded.config, dataset=dataclasses.replace(loaded.config.dataset, sample_rate=3)
    )
    out = list(predict_probabilities(loaded.model, videos, cfg, CPU))
    for pred, video in zip(out, videos, strict=True):
        assert pred.probs["rgb"].shape[1] == len(video.labels)  # odd lengths, rate 3
        np.testing.assert_allclose(pred.probs["flow"].sum(axis=0), 1.0, atol=1e-4)


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
