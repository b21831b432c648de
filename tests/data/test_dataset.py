import logging

import numpy as np
import pytest
import torch

from twostream_das.config import StreamDataConfig, Views
from twostream_das.data.dataset import (
    TrainDataset,
    Video,
    class_counts,
    load_videos,
    make_view,
    offset_views,
    stream_dims,
    view_offsets,
)
from twostream_das.data.layout import read_mapping, read_split
from twostream_das.data.temporal import boundary_target
from twostream_das.errors import DataError

from .helpers import FLOW_DIM, LABELS, RGB_DIM, flow_features, rgb_features, tiny_config


def _videos(root, names=("v1", "v2", "v3"), **changes):
    label_map = read_mapping(root / "mapping.txt")
    return load_videos(tiny_config(root, **changes), list(names), label_map)


def _synthetic_video(name="s", num_frames=11):
    labels = np.repeat([0, 2, 1], [4, 3, num_frames - 7]).astype(np.int64)
    rgb = np.arange(2 * num_frames, dtype=np.float32).reshape(2, num_frames)
    flow = -np.arange(3 * num_frames, dtype=np.float32).reshape(3, num_frames)
    return Video(name, {"rgb": rgb, "flow": flow}, labels)


# ----------------------------------------------------------------------------- loading


def test_load_videos_reads_labels_and_both_streams(tiny_root):
    videos = _videos(tiny_root)
    assert [v.name for v in videos] == ["v1", "v2", "v3"]
    v1 = videos[0]
    assert v1.labels.tolist() == [0, 0, 1, 1, 1, 0, 0] and v1.num_frames == 7
    np.testing.assert_array_equal(v1.features["rgb"], rgb_features("v1"))
    np.testing.assert_array_equal(v1.features["flow"], flow_features("v1"))
    assert stream_dims(videos) == {"rgb": RGB_DIM, "flow": FLOW_DIM}
    assert class_counts(videos, 3).tolist() == [4, 3 + 4, 5 + 5]


def test_load_videos_without_labels_aligns_streams_to_rgb(tiny_root):
    np.save(tiny_root / "features_flow" / "v3.npy", flow_features("v3").T[:-2])  # 2 short
    (video,) = load_videos(
        tiny_config(tiny_root), ["v3"], read_mapping(tiny_root / "mapping.txt"), with_labels=False
    )
    assert video.labels is None and video.num_frames == 9
    assert video.features["flow"].shape == (FLOW_DIM, 9)


def test_missing_feature_file_for_a_video_of_the_split(tiny_root):
    (tiny_root / "features_flow" / "v2.npy").unlink()
    with pytest.raises(DataError, match=r"missing flow features file .*features_flow/v2.npy"):
        _videos(tiny_root, read_split(tiny_root, "train", 1))


def test_nan_in_features_through_load_videos(tiny_root):
    feats = flow_features("v1").T.copy()  # (T, D) on disk
    feats[4, 1] = np.nan
    np.save(tiny_root / "features_flow" / "v1.npy", feats)
    with pytest.raises(DataError, match="v1.npy has 1 non-finite value.*frame 4, dim 1"):
        _videos(tiny_root)


def test_configured_dimension_is_checked(tiny_root):
    cfg = tiny_config(tiny_root)
    flow = StreamDataConfig(
        folder="features_flow", orientation=cfg.streams["flow"].orientation, dim=1024
    )
    with pytest.raises(DataError) as err:
        _videos(tiny_root, streams={**cfg.streams, "flow": flow})
    assert "flow features file" in str(err.value)
    assert "v1.npy has dimension 3 (shape (7, 3), read as TxD); expected 1024" in str(err.value)


def test_unpinned_dimension_must_agree_over_videos(tiny_root):
    np.save(tiny_root / "features_rgb" / "v3.npy", np.zeros((RGB_DIM + 1, 9), np.float32))
    with pytest.raises(DataError) as err:
        _videos(tiny_root)
    msg = str(err.value)
    assert "rgb features file" in msg
    assert "v3.npy has dimension 5; expected 4 like video 'v1'" in msg


def test_length_within_tolerance_pads_with_a_warning(tiny_root, caplog):
    np.save(tiny_root / "features_rgb" / "v3.npy", rgb_features("v3")[:, :7])  # 7 of 9 frames
    with caplog.at_level(logging.WARNING):
        (video,) = _videos(tiny_root, ["v3"], length_tolerance=2)
    assert video.features["rgb"].shape == (RGB_DIM, 9)
    assert video.features["rgb"][0].tolist() == [0, 1, 2, 3, 4, 5, 6, 6, 6]
    assert "rgb features of video 'v3'" in caplog.text
    assert "have 7 frames but the labels have 9" in caplog.text


def test_length_beyond_tolerance_is_an_error(tiny_root):
    np.save(tiny_root / "features_rgb" / "v3.npy", rgb_features("v3")[:, :6])
    with pytest.raises(DataError) as err:
        _videos(tiny_root, ["v3"], length_tolerance=2)
    assert "features_rgb/v3.npy" in str(err.value)
    assert "have 6 frames but the labels have 9" in str(err.value)


def test_label_not_in_mapping_through_load_videos(tiny_root):
    (tiny_root / "groundTruth" / "v2.txt").write_text("pour\npour\nstir\npour\npour\n")
    with pytest.raises(DataError, match=r"v2.txt line 3: label 'stir' is not in .*mapping.txt"):
        _videos(tiny_root)


def test_stream_dims_and_class_counts_errors():
    with pytest.raises(DataError, match="no videos"):
        stream_dims([])
    a, b = _synthetic_video("a"), _synthetic_video("b")
    b.features["rgb"] = np.zeros((5, 11), np.float32)
    with pytest.raises(DataError, match="video 'b' have dimension 5; expected 2 like video 'a'"):
        stream_dims([a, b])
    with pytest.raises(DataError, match=r"ids in \[0, 2\]; expected ids in \[0, 1\]"):
        class_counts([a], 2)


# ------------------------------------------------------------------------------- views


def test_make_view_subsamples_everything_with_the_same_offset():
    video = _synthetic_video(num_frames=11)
    view = make_view(video, sample_rate=3, offset=2, boundary_sigma=3.0)
    assert view.offset == 2 and view.num_frames == 3
    assert view.features["rgb"].tolist() == [[2, 5, 8], [13, 16, 19]]
    assert view.features["flow"][0].tolist() == [-2, -5, -8]
    assert view.labels.dtype == torch.long and view.labels.tolist() == [0, 2, 1]
    # sigma is in full-rate frames: the target is smoothed on the full-rate labels, then
    # subsampled at offset 2 and divided by its maximum
    full = boundary_target(video.labels, 3.0)
    expected = full[2::3] / full[2::3].max()
    np.testing.assert_allclose(view.boundary.numpy(), expected, rtol=1e-6)
    assert view.boundary.dtype == torch.float32


def test_make_view_copies_and_unlabelled_videos_get_zero_boundary():
    video = _synthetic_video()
    unlabelled = Video("u", video.features, None)
    view = make_view(unlabelled, 1, 0, 1.0)
    assert view.labels is None and view.boundary.tolist() == [0.0] * 11
    view.features["rgb"][0, 0] = 99.0
    assert video.features["rgb"][0, 0] == 0.0


def test_offset_views_cover_every_offset():
    views = offset_views(_synthetic_video(num_frames=11), 4, 1.0)
    assert [v.offset for v in views] == [0, 1, 2, 3]
    assert [v.num_frames for v in views] == [3, 3, 3, 2]
    assert len(offset_views(_synthetic_video(num_frames=11), 1, 1.0)) == 1
    short = Video("short", {"rgb": np.zeros((1, 2), np.float32)}, np.array([0, 1]))
    assert [v.offset for v in offset_views(short, 4, 1.0)] == [0, 1]


@pytest.mark.parametrize(("frames", "rate", "all_", "middle"), [
    (20, 8, list(range(8)), [4]),  # 50Salads' rate: the middle view holds frames 4 and 12
    (11, 4, [0, 1, 2, 3], [2]),
    (10, 3, [0, 1, 2], [1]),
    (9, 2, [0, 1], [1]),
    (7, 1, [0], [0]),  # one view at rate 1 either way
    (3, 8, [0, 1, 2], [2]),  # shorter than the rate: the last frame's offset
])  # fmt: skip
def test_view_offsets_all_and_middle_hand_worked(frames, rate, all_, middle):
    assert view_offsets(frames, rate) == view_offsets(frames, rate, Views.ALL) == all_
    assert view_offsets(frames, rate, Views.MIDDLE) == middle


def test_the_middle_view_is_offset_rate_over_2_at_its_own_length():
    (view,) = offset_views(_synthetic_video(num_frames=13), 8, 1.0, Views.MIDDLE)
    assert view.offset == 4 and view.num_frames == 2  # frames 4 and 12 of 13
    views = offset_views(_synthetic_video(num_frames=13), 8, 1.0)
    assert [v.num_frames for v in views] == [2] * 5 + [1] * 3  # all: cropped to 1 when averaged
    assert torch.equal(view.features["rgb"], views[4].features["rgb"])


def test_offset_views_of_a_single_segment_video(tiny_root):
    (v2,) = _videos(tiny_root, ["v2"])
    (view,) = offset_views(v2, 1, 1.0)
    assert view.boundary.tolist() == [0.0] * 5


# ----------------------------------------------------------------------------- training set


def _offsets(dataset, epoch):
    dataset.set_epoch(epoch)
    return [dataset[i].offset for i in range(len(dataset))]


def test_train_dataset_offsets_are_reproducible_per_seed_and_epoch():
    videos = [_synthetic_video(f"v{i}", 40) for i in range(12)]
    a, b = TrainDataset(videos, 4, 1.0, seed=7), TrainDataset(videos, 4, 1.0, seed=7)
    first = _offsets(a, 0)
    assert _offsets(b, 0) == first
    assert len(set(first)) > 1 and set(first) <= {0, 1, 2, 3}
    later = [_offsets(a, e) for e in range(1, 4)]
    assert any(o != first for o in later)
    assert _offsets(TrainDataset(videos, 4, 1.0, seed=8), 0) != first


def test_train_dataset_resume_redraws_the_same_offsets_in_any_order():
    videos = [_synthetic_video(f"v{i}", 40) for i in range(8)]
    run = TrainDataset(videos, 3, 1.0, seed=1)
    draws = {e: _offsets(run, e) for e in range(5)}
    resumed = TrainDataset(videos, 3, 1.0, seed=1)
    resumed.set_epoch(3)
    assert [resumed[i].offset for i in reversed(range(8))] == draws[3][::-1]


def test_train_dataset_items_are_consistent_views():
    video = _synthetic_video("v", 13)
    dataset = TrainDataset([video], 3, 2.0, seed=0)
    for epoch in range(6):
        dataset.set_epoch(epoch)
        view = dataset[0]
        o = view.offset
        for stream in ("rgb", "flow"):
            expected = video.features[stream][:, o::3]
            np.testing.assert_array_equal(view.features[stream].numpy(), expected)
        assert view.labels.tolist() == video.labels[o::3].tolist()


def test_train_dataset_rate_one_and_bad_input():
    videos = [_synthetic_video(f"v{i}") for i in range(3)]
    assert _offsets(TrainDataset(videos, 1, 1.0, seed=0), 5) == [0, 0, 0]
    assert len(TrainDataset(videos, 1, 1.0, seed=0)) == 3
    with pytest.raises(DataError, match="training video 'u' has no labels"):
        TrainDataset([Video("u", videos[0].features, None)], 1, 1.0, seed=0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        TrainDataset(videos, 1, 1.0, seed=-1)


def test_tiny_dataset_labels_match_helper(tiny_root):
    videos = _videos(tiny_root)
    names = read_mapping(tiny_root / "mapping.txt").names
    for video in videos:
        assert [names[i] for i in video.labels] == LABELS[video.name]


def test_dimension_is_checked_against_the_training_videos_or_a_checkpoint(tiny_root):
    cfg, label_map = tiny_config(tiny_root), read_mapping(tiny_root / "mapping.txt")
    train = load_videos(cfg, ["v1", "v2"], label_map)
    np.save(tiny_root / "features_rgb" / "v3.npy", np.zeros((RGB_DIM + 1, 9), np.float32))
    with pytest.raises(DataError) as err:  # a validation video: at load time, not in validation
        load_videos(cfg, ["v3"], label_map, expected_dims=stream_dims(train))
    assert "v3.npy has dimension 5; expected 4 like the training videos" in str(err.value)
    assert "set dataset.streams.rgb.dim" in str(err.value)
    with pytest.raises(DataError, match="expected 4 like the checkpoint best.pt"):
        load_videos(cfg, ["v3"], label_map, expected_dims={"rgb": 4, "flow": 3},
                    expected_from="the checkpoint best.pt")
