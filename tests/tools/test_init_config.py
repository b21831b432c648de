"""``init-config``: a dataset folder inspected, its config written explicitly, loaded, trained."""

import shutil

import numpy as np
import pytest

from _tiny import DIMS, TINY
from twostream_das.checkpoint import load_checkpoint
from twostream_das.cli import main
from twostream_das.config import FeatureSource, Orientation, load_config
from twostream_das.errors import ConfigError, DataError
from twostream_das.tools.init_config import init_config, parse_streams


@pytest.fixture
def dataset(tiny_root, tmp_path):
    """The tiny dataset with its FLOW files stored (T, D), in a folder with a space."""
    root = tmp_path / "my data"
    shutil.copytree(tiny_root, root)
    for path in (root / "features_flow").glob("*.npy"):
        np.save(path, np.load(path).T)
    return root


def test_the_written_config_says_what_the_files_hold_and_trains(dataset, tmp_path, capsys):
    assert main(["init-config", str(dataset), "--fps", "12.5", "--quiet"]) == 0
    path = dataset / "twostream_das.yaml"
    assert str(path) in capsys.readouterr().out
    text = path.read_text()
    assert "# Found: 4 classes (background, cut, pour, stir);" in text
    assert "# folds 1 (8 train / 2 test videos), 2 (8 train / 2 test videos)." in text
    assert "# features_flow/ (10 files): 5-d, stored TxD (detected from the files)" in text
    cfg = load_config(path)
    assert cfg.dataset.root == str(dataset.resolve()) and cfg.dataset.fps == 12.5
    assert cfg.dataset.standardize is True and cfg.dataset.background == ["background"]
    assert list(cfg.dataset.streams) == ["rgb", "flow"]  # rgb first, as the presets
    rgb, flow = cfg.dataset.streams["rgb"], cfg.dataset.streams["flow"]
    assert (rgb.source, rgb.folder, rgb.orientation, rgb.dim) == (
        FeatureSource.FOLDER, "features_rgb", Orientation.DxT, DIMS["rgb"])
    assert (flow.folder, flow.orientation, flow.dim) == ("features_flow", Orientation.TxD,
                                                         DIMS["flow"])
    assert cfg.fusion.weights == {"rgb": 0.5, "flow": 0.5}
    out = tmp_path / "run"
    tiny = [o for o in TINY if not o.startswith("dataset.")]
    assert main(["train", "--config", str(path), "--set", *tiny, "train.epochs=1",
                 "--out", str(out), "--quiet"]) == 0
    weights = load_checkpoint(out / "checkpoints" / "best.pt").weights
    assert weights["standardizer.flow_mean"].shape == (DIMS["flow"],)


def test_nothing_is_overwritten_and_fps_is_required(dataset, tmp_path, capsys):
    mine = tmp_path / "mine.yaml"
    mine.write_text("name: mine\n")
    assert main(["init-config", str(dataset), "--fps", "30", "--out", str(mine)]) == 2
    assert "mine.yaml exists; refusing to overwrite it" in capsys.readouterr().err
    assert mine.read_text() == "name: mine\n"
    # --fps is required unless extract recorded the rate in video_info/
    assert main(["init-config", str(dataset)]) == 2
    assert "records no rate; give --fps" in capsys.readouterr().err
    assert not (dataset / "twostream_das.yaml").exists()


def test_the_standard_i3d_folder_becomes_its_two_halves(tiny_root, tmp_path):
    root = tmp_path / "i3d"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("features_flow"))
    (root / "features").mkdir()
    for path in (tiny_root / "features_rgb").glob("*.npy"):
        frames = np.load(path).shape[1]
        np.save(root / "features" / path.name, np.zeros((2048, frames), np.float32))
    cfg = load_config(init_config(root, fps=15))  # features_rgb -> rgb, so i3d_rgb keeps its name
    assert {k: (v.source, v.dim) for k, v in cfg.dataset.streams.items()} == {
        "rgb": (FeatureSource.FOLDER, DIMS["rgb"]), "i3d_rgb": (FeatureSource.I3D_RGB, 1024),
        "flow": (FeatureSource.I3D_FLOW, 1024)}
    # the GTEA preset's layout, named by hand: Br-Prompt-style RGB folder, I3D flow half
    cfg = load_config(init_config(root, 15, tmp_path / "gtea.yaml",
                                  parse_streams("rgb=features_rgb,flow=i3d_flow")))
    assert list(cfg.dataset.streams) == ["rgb", "flow"]
    assert cfg.dataset.streams["flow"].source is FeatureSource.I3D_FLOW
    assert cfg.fusion.weights == {"rgb": 0.5, "flow": 0.5}


def test_extract_s_per_stream_copies_of_the_standard_folder_are_not_streams(tiny_root, tmp_path):
    """``extract`` writes features/ (2048, T) and features_i3d_rgb/, features_i3d_flow/ (its
    halves): the config gets the two halves once, not four streams."""
    root = tmp_path / "extracted"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("features_*"))
    for folder, rows in (("features", 2048), ("features_i3d_rgb", 1024),
                         ("features_i3d_flow", 1024)):
        (root / folder).mkdir()
        for path in (tiny_root / "features_rgb").glob("*.npy"):
            frames = np.load(path).shape[1]
            np.save(root / folder / path.name, np.zeros((rows, frames), np.float32))
    cfg = load_config(init_config(root, fps=15))
    assert {k: v.source for k, v in cfg.dataset.streams.items()} == {
        "rgb": FeatureSource.I3D_RGB, "flow": FeatureSource.I3D_FLOW}


def test_an_orientation_the_files_do_not_show_is_asked_for(tiny_root, tmp_path):
    """Every video 25 frames and RGB files (25, 25): either axis could be the feature axis."""
    root = tmp_path / "square"
    shutil.copytree(tiny_root, root)
    for gt in (root / "groundTruth").glob("*.txt"):
        gt.write_text("".join(line + "\n" for line in gt.read_text().split()[:25]))
        np.save(root / "features_rgb" / f"{gt.stem}.npy", np.ones((25, 25), np.float32))
        flow = root / "features_flow" / f"{gt.stem}.npy"
        np.save(flow, np.load(flow)[:, :25])
    with pytest.raises(DataError, match="give --orientation features_rgb=DxT or features_rgb=TxD"):
        init_config(root, 15)
    cfg = load_config(init_config(root, 15, orientations={"features_rgb": Orientation.TxD}))
    assert cfg.dataset.streams["rgb"].orientation is Orientation.TxD
    text = (root / "twostream_das.yaml").read_text()
    assert "25-d, stored TxD (given with --orientation)" in text


def test_streams_name_their_sources():
    assert parse_streams("features_rgb, pose=features_pose") == [
        (None, "features_rgb"), ("pose", "features_pose")]
    with pytest.raises(ConfigError, match="expected a comma list"):
        parse_streams("a,,b")


def test_one_stream_and_three_streams(dataset, tmp_path):
    shutil.copytree(dataset / "features_rgb", dataset / "features_Pose 2")
    cfg = load_config(init_config(dataset, 15))
    assert list(cfg.dataset.streams) == ["rgb", "flow", "pose_2"]
    assert cfg.fusion.weights == pytest.approx({s: 1 / 3 for s in cfg.dataset.streams})
    assert sum(cfg.fusion.weights.values()) == pytest.approx(1.0)
    cfg = load_config(init_config(dataset, 15, tmp_path / "one.yaml", [(None, "features_flow")]))
    assert list(cfg.dataset.streams) == ["flow"] and cfg.fusion.weights == {"flow": 1.0}
