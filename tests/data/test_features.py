import logging

import numpy as np
import pytest

from _shared import shared_dir
from twostream_das.config import FeatureSource, Orientation, StreamDataConfig
from twostream_das.data.features import align_to_labels, feature_path, load_stream
from twostream_das.errors import DataError

from .helpers import flow_features, rgb_features

FISHER = shared_dir() / "data" / "breakfast_fisher64_5vids"

RGB = StreamDataConfig(folder="features_rgb", orientation=Orientation.DxT)
FLOW = StreamDataConfig(folder="features_flow", orientation=Orientation.TxD)


def test_folder_streams_in_both_orientations(tiny_root):
    rgb = load_stream(tiny_root, "v1", RGB, "rgb")
    flow = load_stream(tiny_root, "v1", FLOW, "flow")
    assert rgb.dtype == np.float32 and rgb.flags.c_contiguous and rgb.shape == (4, 7)
    assert flow.dtype == np.float32 and flow.flags.c_contiguous and flow.shape == (3, 7)
    np.testing.assert_array_equal(rgb, rgb_features("v1"))
    np.testing.assert_array_equal(flow, flow_features("v1"))  # transposed back from (T, D)


def test_i3d_halves_of_the_standard_file(tmp_path):
    (tmp_path / "features").mkdir()
    full = np.arange(2048, dtype=np.float64)[:, None] + np.zeros((1, 6))  # row index everywhere
    np.save(tmp_path / "features" / "vid.npy", full)
    rgb = load_stream(tmp_path, "vid", StreamDataConfig(source=FeatureSource.I3D_RGB, dim=1024))
    flow = load_stream(tmp_path, "vid", StreamDataConfig(source=FeatureSource.I3D_FLOW))
    assert rgb.shape == flow.shape == (1024, 6) and rgb.dtype == np.float32
    assert rgb[:, 0].tolist() == list(range(1024))
    assert flow[:, 5].tolist() == list(range(1024, 2048))
    assert feature_path(tmp_path, "vid", StreamDataConfig(source=FeatureSource.I3D_FLOW)) == (
        tmp_path / "features" / "vid.npy"
    )


def test_i3d_file_with_wrong_shape(tmp_path):
    (tmp_path / "features").mkdir()
    np.save(tmp_path / "features" / "vid.npy", np.zeros((1024, 6), np.float32))
    with pytest.raises(DataError, match=r"shape \(1024, 6\); expected \(2048, T\)"):
        load_stream(tmp_path, "vid", StreamDataConfig(source=FeatureSource.I3D_RGB))


def test_missing_feature_file_names_file_video_and_source(tiny_root):
    with pytest.raises(DataError) as err:
        load_stream(tiny_root, "ghost", RGB, "rgb")
    msg = str(err.value)
    assert f"missing rgb features file {tiny_root / 'features_rgb' / 'ghost.npy'}" in msg
    assert "video 'ghost'" in msg and "source folder 'features_rgb', stored DxT" in msg


def test_wrong_dimension_for_the_configured_stream(tiny_root):
    spec = StreamDataConfig(folder="features_rgb", orientation=Orientation.DxT, dim=7)
    with pytest.raises(DataError) as err:
        load_stream(tiny_root, "v1", spec, "rgb")
    msg = str(err.value)
    assert "v1.npy has dimension 4 (shape (4, 7), read as DxT); expected 7" in msg
    assert "looks transposed: set the stream's orientation to TxD" in msg  # T == 7 == dim


@pytest.mark.parametrize(("bad", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_values_name_frame_and_dim(tiny_root, bad, shown):
    feats = rgb_features("v1")
    feats[2, 5] = bad
    feats[3, 6] = np.nan
    np.save(tiny_root / "features_rgb" / "v1.npy", feats)
    with pytest.raises(DataError) as err:
        load_stream(tiny_root, "v1", RGB)
    assert f"2 non-finite value(s); first: {shown} at frame 5, dim 2" in str(err.value)
    assert "v1.npy" in str(err.value)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 3, 4), np.float32), r"shape \(2, 3, 4\); expected a 2-D array stored DxT"),
        (np.zeros((4, 0), np.float32), "has 0 frames"),
        (np.array([["a", "b"]]), "dtype <U1; expected real numbers"),
    ],
)
def test_malformed_arrays(tiny_root, array, message):
    np.save(tiny_root / "features_rgb" / "v1.npy", array)
    with pytest.raises(DataError, match=message):
        load_stream(tiny_root, "v1", RGB)


def test_pickled_object_array_is_refused(tiny_root):
    np.save(tiny_root / "features_rgb" / "v1.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="v1.npy holds Python objects .* never unpickled") as err:
        load_stream(tiny_root, "v1", RGB)
    assert "allow_pickle" not in str(err.value)  # numpy's advice to unpickle is not repeated


def test_not_an_npy_file(tiny_root):
    (tiny_root / "features_rgb" / "v1.npy").write_text("hello")
    with pytest.raises(DataError, match="cannot read features file .*v1.npy"):
        load_stream(tiny_root, "v1", RGB)


# ----------------------------------------------------------------------------- alignment


def test_align_equal_length_is_unchanged():
    feats = np.ones((2, 5), np.float32)
    assert align_to_labels(feats, 5, 0, "v", "rgb") is feats


def test_align_pads_by_repeating_the_last_frame_with_a_warning(caplog):
    feats = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    with caplog.at_level(logging.WARNING, logger="twostream_das.data.features"):
        out = align_to_labels(feats, 5, 2, "vid7", "flow", path="f/vid7.npy")
    assert out.tolist() == [[1, 2, 3, 3, 3], [4, 5, 6, 6, 6]]
    assert len(caplog.records) == 1
    msg = caplog.records[0].getMessage()
    assert "flow features of video 'vid7' (f/vid7.npy) have 3 frames but the labels have 5" in msg
    assert "padding" in msg


def test_align_trims_the_end_with_a_warning(caplog):
    feats = np.arange(12, dtype=np.float32).reshape(2, 6)
    with caplog.at_level(logging.WARNING, logger="twostream_das.data.features"):
        out = align_to_labels(feats, 4, 2, "vid", "rgb")
    assert out.tolist() == [[0, 1, 2, 3], [6, 7, 8, 9]]
    assert "have 6 frames but the labels have 4; trimming the end" in caplog.text


def test_align_beyond_tolerance_is_an_error():
    with pytest.raises(DataError) as err:
        align_to_labels(np.zeros((2, 10), np.float32), 4, 5, "vid", "rgb", path="x/vid.npy")
    msg = str(err.value)
    assert "rgb features of video 'vid' (x/vid.npy) have 10 frames but the labels have 4" in msg
    assert "dataset.length_tolerance=5" in msg


# ----------------------------------------------------------------------------- real data


def test_real_fisher_features_as_a_folder_stream():
    if not FISHER.is_dir():
        pytest.skip(f"{FISHER} is not available")
    video = sorted(FISHER.glob("features/*.npy"))[0].stem
    spec = StreamDataConfig(folder="features", orientation=Orientation.DxT, dim=64)
    feats = load_stream(FISHER, video, spec, "rgb")
    assert feats.shape[0] == 64 and feats.dtype == np.float32 and feats.shape[1] > 100


def test_alignment_without_labels_names_the_reference_stream():
    with pytest.raises(DataError) as err:
        align_to_labels(np.zeros((2, 10), np.float32), 4, 5, "vid", "flow",
                        reference="the rgb features")
    assert "have 10 frames but the rgb features have 4" in str(err.value)
    assert "labels" not in str(err.value)  # there were none
