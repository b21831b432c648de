import json

import numpy as np
import pytest
import torch
from _extraction_helpers import moving_square_frames, write_video

from _torchrun import torchrun
from twostream_das.cli import main
from twostream_das.extraction import ExtractionSettings, extract_video_features
from twostream_das.extraction.i3d import InceptionI3d

pytest.importorskip("av")
pytest.importorskip("cv2")

ENV_NAMES = ("TWOSTREAM_DAS_I3D_RGB_WEIGHTS", "TWOSTREAM_DAS_I3D_FLOW_WEIGHTS",
             "TWOSTREAM_DAS_CLIP_WEIGHTS")
SMALL = ["--image-size", "32", "--window", "5", "--flow-method", "farneback", "--quiet"]


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Random-weight towers saved in the community pytorch-i3d layout (rgb/flow_imagenet.pt)."""
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for name, channels in (("rgb", 3), ("flow", 2)):
            state = {k: v for k, v in InceptionI3d(channels).state_dict().items()
                     if not k.endswith("num_batches_tracked")}
            paths[name] = folder / f"{name}_imagenet.pt"
            torch.save(state, paths[name])
    return paths


@pytest.fixture(autouse=True)
def no_weights_env(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_extract_then_resume(tiny_video, weight_files, tmp_path, capsys):
    out = tmp_path / "dataset"
    args = ["extract", str(tiny_video), "--out", str(out), "--i3d-rgb-weights",
            str(weight_files["rgb"]), "--i3d-flow-weights", str(weight_files["flow"]), *SMALL]
    assert main(args) == 0
    assert "extracted 1 video(s), skipped 0" in capsys.readouterr().out
    expected = {"features_i3d_rgb": 1024, "features_i3d_flow": 1024, "features": 2048}
    for folder, dim in expected.items():
        assert np.load(out / folder / "tiny.npy").shape == (dim, 9)
    assert main(args) == 0
    assert "extracted 0 video(s), skipped 1" in capsys.readouterr().out


def test_weights_from_the_environment(tiny_video, weight_files, tmp_path, monkeypatch):
    monkeypatch.setenv("TWOSTREAM_DAS_I3D_RGB_WEIGHTS", str(weight_files["rgb"]))
    out = tmp_path / "out"
    args = ["extract", str(tiny_video), "--out", str(out), "--streams", "i3d_rgb", *SMALL]
    assert main(args) == 0
    assert (out / "features_i3d_rgb" / "tiny.npy").is_file()
    assert not (out / "features").exists()  # one I3D stream: no combined file


def test_missing_weights_is_one_clear_line(tiny_video, tmp_path, capsys):
    code = main(["extract", str(tiny_video), "--out", str(tmp_path), "--streams", "i3d_flow"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--i3d-flow-weights (or $TWOSTREAM_DAS_I3D_FLOW_WEIGHTS) was not given" in err
    assert "flow_imagenet.pt" in err
    assert main(["extract", str(tiny_video), "--out", str(tmp_path), "--streams", "rgb"]) == 2
    assert "unknown stream 'rgb'" in capsys.readouterr().err


def test_library_function_for_predict(tiny_video, weight_files):
    features = extract_video_features(
        tiny_video, ["i3d_flow", "i3d_rgb"], i3d_rgb_weights=weight_files["rgb"],
        i3d_flow_weights=weight_files["flow"],
        settings=ExtractionSettings(image_size=32, window=5, flow_method="farneback"),
    )
    assert list(features) == ["i3d_flow", "i3d_rgb"]
    assert all(f.shape == (1024, 9) and f.dtype == np.float32 for f in features.values())


def test_two_ranks_under_torchrun_write_the_files_of_one_rank(weight_files, tmp_path):
    """2 gloo ranks share 3 videos (a: 9 frames on rank 0; b, c: 6 + 4 on rank 1); the files,
    and rank 0's manifest of all of them, are those of one process."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, frames in (("a", 9), ("b", 6), ("c", 4)):
        write_video(videos / f"{name}.mp4", moving_square_frames(frames))
    weights = ["--i3d-rgb-weights", str(weight_files["rgb"]),
               "--i3d-flow-weights", str(weight_files["flow"])]
    single, multi = tmp_path / "one", tmp_path / "two"
    assert main(["extract", str(videos), "--out", str(single), *weights, *SMALL]) == 0
    done = torchrun(["extract", videos, "--out", multi, *weights, *SMALL], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 of 2: extracted 1 video(s)" in done.stdout  # a (9 frames)
    assert "rank 1 of 2: extracted 2 video(s)" in done.stdout  # b and c (6 + 4 frames)
    files = sorted(p.relative_to(single) for p in single.rglob("*.npy"))
    assert len(files) == 9 and files == sorted(p.relative_to(multi) for p in multi.rglob("*.npy"))
    for rel in files:
        np.testing.assert_array_equal(np.load(multi / rel), np.load(single / rel))
    manifest = json.loads((multi / "manifest.json").read_text())
    assert manifest == json.loads((single / "manifest.json").read_text())
    assert manifest["streams"] == ["i3d_rgb", "i3d_flow"] and manifest["complete"]
    assert manifest["recipe"]["flow_method"] == "farneback" and manifest["total_frames"] == 19
    first = manifest["videos"][0]
    assert first["video"] == "a" and first["source"] == "a.mp4" and first["frames"] == 9
    assert first["files"]["combined"] == {
        "path": "features/a.npy", "dims": [2048, 9], "dtype": "float32",
        "bytes": (single / "features" / "a.npy").stat().st_size}
    assert manifest["total_bytes"] == sum(p.stat().st_size for p in single.rglob("*.npy"))
