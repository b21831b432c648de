"""``prediction.read_feature_file``: the data layer's checks, applied to files given to predict."""

import numpy as np
import pytest
import torch

from twostream_das.config import FeatureSource, Orientation, StreamDataConfig
from twostream_das.errors import DataError
from twostream_das.workflows.prediction import predict_files, read_feature_file

FOLDER = StreamDataConfig(folder="feats", orientation=Orientation.DxT)
I3D_FLOW = StreamDataConfig(source=FeatureSource.I3D_FLOW)


def _save(tmp_path, array):
    path = tmp_path / "clip.npy"
    np.save(path, array)
    return path


def test_reads_dxt_or_txd_as_float32_dxt(tmp_path):
    feats = np.arange(15, dtype=np.float64).reshape(3, 5)  # (D=3, T=5)
    out = read_feature_file(_save(tmp_path, feats), "rgb", FOLDER, 3, None)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, feats)
    path = _save(tmp_path, feats.T)
    np.testing.assert_array_equal(read_feature_file(path, "rgb", FOLDER, 3, Orientation.TxD), feats)


def test_a_full_i3d_file_is_sliced_to_the_stream(tmp_path):
    full = np.zeros((2048, 3), dtype=np.float32)
    full[1024:] = 1.0  # the FLOW half
    out = read_feature_file(_save(tmp_path, full), "flow", I3D_FLOW, 1024, None)
    assert out.shape == (1024, 3) and (out == 1.0).all()


def test_nan_names_the_file_the_value_and_where(tmp_path):
    feats = np.ones((3, 5), dtype=np.float32)
    feats[2, 4] = np.inf
    feats[1, 3] = np.nan
    path = _save(tmp_path, feats)
    with pytest.raises(DataError) as err:
        read_feature_file(path, "rgb", FOLDER, 3, None)
    msg = str(err.value)
    assert str(path) in msg
    assert "2 non-finite value(s); first: nan at frame 3, dim 1; expected finite numbers" in msg


def test_wrong_dimension_and_orientation(tmp_path):
    path = _save(tmp_path, np.zeros((5, 3)))  # (T=5, D=3) read as DxT
    with pytest.raises(DataError) as err:
        read_feature_file(path, "rgb", FOLDER, 3, None)
    msg = str(err.value)
    assert f"--stream rgb features file {path} has dimension 5 (shape (5, 3), read as DxT); " in msg
    assert "; expected 3; the file looks transposed" in msg
    assert "the file looks transposed: set --orientation rgb to TxD?" in msg
    with pytest.raises(DataError) as err:  # not transposed, just another dimension: no hint
        read_feature_file(_save(tmp_path, np.zeros((4, 6))), "rgb", FOLDER, 3, None)
    assert "expected 3" in str(err.value) and "transposed" not in str(err.value)


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.zeros((3, 0)), "has 0 frames"),
        (np.zeros(3), "expected a 2-D array"),
        (np.array([["a", "b"]]), "expected real numbers"),
    ],
    ids=["no-frames", "1-d", "strings"],
)
def test_other_bad_files(tmp_path, array, expected):
    with pytest.raises(DataError, match=expected):
        read_feature_file(_save(tmp_path, array), "rgb", FOLDER, 3, None)


def _predict_in_a_group(rank, world, store, checkpoint, rgb, flow, out):
    """A spawned rank that starts the process group itself, then calls predict_files."""
    import torch.distributed as dist

    from twostream_das.workflows.prediction import predict_files

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    summary = predict_files(checkpoint, {"rgb": rgb, "flow": flow}, out, quiet=True)
    assert [v["name"] for v in summary["videos"]] == ["v3"]  # every rank gets rank 0's summary
    dist.destroy_process_group()  # the caller's group: predict_files left it up


def test_predict_files_in_the_caller_s_group_with_a_rank_that_has_no_video(
    trained_run, tiny_root, tmp_path
):
    """One video on 2 ranks: rank 1 predicts nothing and still takes part; the files are
    those of one process."""
    rgb, flow = tiny_root / "features_rgb" / "v3.npy", tiny_root / "features_flow" / "v3.npy"
    checkpoint = trained_run / "checkpoints" / "best.pt"
    one, two = tmp_path / "one", tmp_path / "two"
    predict_files(checkpoint, {"rgb": rgb, "flow": flow}, one, quiet=True)
    torch.multiprocessing.spawn(
        _predict_in_a_group, args=(2, str(tmp_path / "store"), checkpoint, rgb, flow, two),
        nprocs=2,
    )
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert (two / "v3.txt").read_text() == (one / "v3.txt").read_text()
    assert (two / "summary.json").read_text() == (one / "summary.json").read_text()
