import json
import os

import numpy as np
import pytest
import torch
from _extraction_helpers import moving_square_frames, write_video

from twostream_das.errors import ConfigError, WeightsNotFoundError
from twostream_das.extraction import (
    ExtractionSettings,
    FeatureExtractor,
    FeatureStream,
    extract_videos,
    parse_streams,
)
from twostream_das.extraction.flow import clip_and_scale, iter_flow, make_flow_fn
from twostream_das.extraction.video import (
    iter_frames,
    resize_for_i3d,
    rgb_to_gray,
    rgb_to_unit_range,
)
from twostream_das.extraction.vit import VisionTransformer

pytest.importorskip("av")
pytest.importorskip("cv2")

SIZE, WINDOW = 32, 21  # tiny frames, the recipe's window (longer than the 9-frame video)


@pytest.fixture(scope="module")
def tiny_vit():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return VisionTransformer(image_size=32, patch_size=8, width=64, layers=2, output_dim=16)


class PooledProjection(torch.nn.Module):
    """A cheap stand-in for I3D: (B, C, window, H, W) -> spatial means -> fixed linear -> 1024."""

    def __init__(self, in_channels: int, window: int = 5) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(in_channels)
        self.weight = torch.nn.Parameter(torch.randn(in_channels * window, 1024, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(3, 4)).flatten(1) @ self.weight


@pytest.fixture
def fake_extractor():
    models = {"i3d_rgb": PooledProjection(3), "i3d_flow": PooledProjection(2)}
    return FeatureExtractor(models, ExtractionSettings(image_size=SIZE, window=5, batch_size=4))


@pytest.fixture(scope="module")
def real_result(i3d_models, tiny_vit, tmp_path_factory):
    """Random-weight I3D towers and a tiny ViT run once over the 9-frame video (window 21)."""
    video = write_video(tmp_path_factory.mktemp("video") / "tiny.mp4", moving_square_frames(9))
    settings = ExtractionSettings(image_size=SIZE, window=WINDOW, batch_size=4, device="cpu")
    extractor = FeatureExtractor({**i3d_models, "clip_rgb": tiny_vit}, settings)
    return video, extractor.extract(video)


def test_shapes_one_column_per_decoded_frame(real_result):
    _, result = real_result
    assert result.num_frames == 9
    assert {k: v.shape for k, v in result.features.items()} == {
        "i3d_rgb": (1024, 9), "i3d_flow": (1024, 9), "clip_rgb": (64, 9)}
    for array in result.features.values():
        assert array.dtype == np.float32 and np.isfinite(array).all()
    assert {"decode", "flow", "i3d_rgb", "i3d_flow", "clip_rgb"} <= set(result.seconds)


def test_deterministic_and_independent_of_batch_size(tiny_video):
    models = {"i3d_rgb": PooledProjection(3), "i3d_flow": PooledProjection(2)}
    small = FeatureExtractor(models, ExtractionSettings(image_size=SIZE, window=5, batch_size=1))
    large = FeatureExtractor(models, ExtractionSettings(image_size=SIZE, window=5, batch_size=8))
    first = small.extract(tiny_video).features
    again = small.extract(tiny_video).features
    batched = large.extract(tiny_video).features
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        np.testing.assert_allclose(first[name], batched[name], rtol=1e-5, atol=1e-5)


def rgb_inputs(video) -> list[np.ndarray]:
    return [rgb_to_unit_range(resize_for_i3d(f, SIZE, "square")) for f in iter_frames(video)]


def flow_inputs(video) -> list[np.ndarray]:
    grays = (rgb_to_gray(resize_for_i3d(f, SIZE, "square")) for f in iter_frames(video))
    flows = iter_flow(grays, make_flow_fn("tvl1"))
    return [clip_and_scale(f).transpose(2, 0, 1) for f in flows]


@pytest.mark.parametrize("stream,inputs", [("i3d_rgb", rgb_inputs), ("i3d_flow", flow_inputs)])
def test_windows_are_centred_and_zero_padded_at_the_ends(real_result, i3d_models, stream, inputs):
    """Frame 0's feature is I3D on [10 zero frames, frames 0..8, 2 zero frames] (T = 9)."""
    video, result = real_result
    features = result.features[stream]
    frames = torch.from_numpy(np.stack(inputs(video), axis=1))  # (C, 9, S, S)
    first = torch.zeros(frames.shape[0], WINDOW, SIZE, SIZE)
    first[:, 10:19] = frames  # window of frame 0 covers frames -10..10
    last = torch.zeros_like(first)
    last[:, 2:11] = frames  # window of frame 8 covers frames -2..18: frames 0..8 at 2..10
    with torch.inference_mode():
        expected = i3d_models[stream](torch.stack([first, last])).numpy()  # (2, 1024)
    np.testing.assert_allclose(features[:, 0], expected[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(features[:, 8], expected[1], rtol=1e-4, atol=1e-5)
    shifted = torch.zeros_like(first)
    shifted[:, 9:18] = frames  # centred one frame off: must not match (the test can fail)
    with torch.inference_mode():
        wrong = i3d_models[stream](shifted[None])[0].numpy()
    assert np.abs(features[:, 0] - wrong).max() > 100 * np.abs(features[:, 0] - expected[0]).max()


class InputSpy(torch.nn.Module):
    """Records what the network is given; returns zeros of the I3D feature size."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return torch.zeros(x.shape[0], 1024)


@pytest.mark.parametrize("resize", ["square", "short-side-crop"])
def test_network_inputs_are_in_unit_range_and_flow_is_clipped(tmp_path, resize):
    video = write_video(tmp_path / "fast.mp4", moving_square_frames(6, step=5))
    rgb, flow = InputSpy(3), InputSpy(2)
    settings = ExtractionSettings(image_size=SIZE, window=5, flow_bound=0.5,  # clip at 0.5 px
                                  resize=resize)
    FeatureExtractor({"i3d_rgb": rgb, "i3d_flow": flow}, settings).extract(video)
    rgb_in, flow_in = torch.cat(rgb.inputs), torch.cat(flow.inputs)
    assert rgb_in.shape == (6, 3, 5, SIZE, SIZE) and flow_in.shape == (6, 2, 5, SIZE, SIZE)
    assert rgb_in.min() >= -1 and rgb_in.max() <= 1 and rgb_in.min() < -0.5 < 0.5 < rgb_in.max()
    assert flow_in.abs().max() == 1.0  # the square moves > 0.5 px: clipped, then divided
    assert (flow_in[:, 0].abs() == 1.0).any()  # dx channel saturates (motion is horizontal)


def file_times(out):
    return {p: p.stat().st_mtime_ns for p in sorted(out.rglob("*.npy"))}


def test_resumable_atomic_outputs(fake_extractor, tiny_video, tmp_path, monkeypatch):
    extractor = fake_extractor
    out = tmp_path / "out"
    streams = ["i3d_rgb", "i3d_flow"]
    summary = extract_videos(tiny_video, out, extractor, streams, progress=False)
    assert summary.extracted == ["tiny"] and summary.skipped == []
    rgb, flow = (np.load(out / f"features_{s}" / "tiny.npy") for s in streams)
    combined = np.load(out / "features" / "tiny.npy")
    assert rgb.shape == flow.shape == (1024, 9) and combined.shape == (2048, 9)
    np.testing.assert_array_equal(combined, np.concatenate([rgb, flow]))  # RGB rows first
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]

    calls = []
    original = extractor.extract
    monkeypatch.setattr(extractor, "extract",
                        lambda video, todo, **kw: calls.append(list(todo)) or original(video, todo))
    before = file_times(out)
    summary = extract_videos(tiny_video, out, extractor, streams, progress=False)
    assert summary.skipped == ["tiny"] and calls == [] and file_times(out) == before

    flow_path = out / "features_i3d_flow" / "tiny.npy"
    flow_path.write_bytes(flow_path.read_bytes()[:500])  # truncated, as if by a crash elsewhere
    (out / "features_i3d_rgb" / ".tiny.npy.x1y2.tmp").write_bytes(b"left by a killed run")
    summary = extract_videos(tiny_video, out, extractor, streams, progress=False)
    assert summary.extracted == ["tiny"] and calls == [[FeatureStream.I3D_FLOW]]
    np.testing.assert_array_equal(np.load(flow_path), flow)
    assert not (out / "features_i3d_rgb" / ".tiny.npy.x1y2.tmp").exists()

    np.save(out / "features_i3d_rgb" / "tiny.npy", rgb[:, :5])  # wrong length
    extract_videos(tiny_video, out, extractor, streams, progress=False)
    assert calls[-1] == [FeatureStream.I3D_RGB]
    assert np.load(out / "features" / "tiny.npy").shape == (2048, 9)


def test_interrupted_write_leaves_no_file(fake_extractor, tiny_video, tmp_path, monkeypatch):
    real_save = np.save

    def crash_mid_write(file, array, *args, **kwargs):
        file.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        extract_videos(tiny_video, tmp_path / "out", fake_extractor, ["i3d_rgb"], progress=False)
    monkeypatch.setattr(np, "save", real_save)
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_missing_weights_are_named(monkeypatch):
    with pytest.raises(WeightsNotFoundError, match="i3d_flow_weights was not given"):
        FeatureExtractor.from_weights(["i3d_flow"])
    with pytest.raises(WeightsNotFoundError, match="--clip-weights"):
        FeatureExtractor.from_weights(
            ["clip_rgb"], weight_names={FeatureStream.CLIP_RGB: "--clip-weights"})


def test_stream_and_settings_validation():
    assert parse_streams("i3d_flow, clip_rgb,i3d_flow") == (
        FeatureStream.I3D_FLOW, FeatureStream.CLIP_RGB)
    assert [s.modality for s in FeatureStream] == ["rgb", "flow", "rgb"]
    with pytest.raises(ConfigError, match="unknown stream 'rgb'"):
        parse_streams("rgb")
    with pytest.raises(ConfigError, match="no stream"):
        parse_streams(" , ")
    with pytest.raises(ConfigError, match="window = 20"):
        ExtractionSettings(window=20)
    assert ExtractionSettings(flow_method="farneback").flow_method.value == "farneback"
    assert os.environ.get("TWOSTREAM_DAS_NOT_SET") is None


def test_overlapped_threads_give_the_sequential_features(real_result, i3d_models, tiny_vit):
    video, overlapped = real_result  # the default: decode, flow and networks in threads
    settings = ExtractionSettings(image_size=SIZE, window=WINDOW, batch_size=4, device="cpu",
                                  overlap=False)
    sequential = FeatureExtractor({**i3d_models, "clip_rgb": tiny_vit}, settings).extract(video)
    assert sequential.features.keys() == overlapped.features.keys()
    for name, array in sequential.features.items():
        np.testing.assert_array_equal(overlapped.features[name], array)


class Broken(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("tower failed")


def test_a_failing_stage_stops_the_others(tiny_video):
    models = {"i3d_rgb": PooledProjection(3), "i3d_flow": Broken()}
    extractor = FeatureExtractor(models, ExtractionSettings(image_size=SIZE, window=5,
                                                            queue_size=1))
    with pytest.raises(RuntimeError, match="tower failed"):
        extractor.extract(tiny_video)


def test_each_rank_its_share_and_a_rerun_finishes_a_killed_one(fake_extractor, tmp_path,
                                                                 monkeypatch):
    from twostream_das.extraction import extract as extract_module

    videos = tmp_path / "videos"
    videos.mkdir()
    for name, frames in (("a", 9), ("b", 6), ("c", 4)):
        write_video(videos / f"{name}.mp4", moving_square_frames(frames))
    out = tmp_path / "out"
    monkeypatch.setattr(extract_module, "rank_and_world", lambda: (1, 2))
    summary = extract_videos(videos, out, fake_extractor, progress=False)
    assert summary.extracted == ["b", "c"] and summary.manifest is None  # only rank 0 writes it
    assert sorted(p.stem for p in (out / "features").glob("*.npy")) == ["b", "c"]
    flow_c = out / "features_i3d_flow" / "c.npy"
    expected = np.load(flow_c)
    flow_c.unlink()  # rank 1 was killed while writing c's flow: only its temporary file is left
    (flow_c.parent / ".c.npy.k1ll.tmp").write_bytes(b"partial")
    summary = extract_videos(videos, out, fake_extractor, progress=False)
    assert summary.extracted == ["c"] and summary.skipped == ["b"]
    np.testing.assert_array_equal(np.load(flow_c), expected)
    assert not list(flow_c.parent.glob("*.tmp"))
    monkeypatch.setattr(extract_module, "rank_and_world", lambda: (0, 2))
    summary = extract_videos(videos, out, fake_extractor, progress=False)
    assert summary.extracted == ["a"] and summary.manifest == out / "manifest.json"
    manifest = json.loads(summary.manifest.read_text())
    assert [(v["video"], v["frames"], v["complete"]) for v in manifest["videos"]] == [
        ("a", 9, True), ("b", 6, True), ("c", 4, True)]
