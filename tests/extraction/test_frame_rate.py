"""Frame rate end to end: frames resampled by their timestamps before flow and features, the
video's own rate and duration recorded, seconds in the outputs in the video's time.

Tiny stand-ins for the I3D towers (average pooling + a linear layer, 1024-d out) keep these
tests fast; the resampling happens before any network, so it does not depend on them.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from _extraction_helpers import moving_square_frames, write_video

from twostream_das.extraction import ExtractionSettings, FeatureExtractor, extract_videos
from twostream_das.extraction.video import TimedFrames, timed_frames

av = pytest.importorskip("av")
pytest.importorskip("cv2")

TINY = dict(image_size=32, window=5, flow_method="farneback")
BIT_RATE = 2_000_000  # the codec's noise: a mean 2/255 between the two encodes' frames


def _resample(times, fps, durations=None):
    """Indices of the frames ``TimedFrames`` keeps, and its timing."""
    durations = durations or [None] * len(times)
    timed = TimedFrames(zip(times, durations, range(len(times)), strict=True), fps)
    return list(timed), timed.timing


# -- the resampling rule, by hand -------------------------------------------------------------


def test_30_fps_to_15_keeps_every_other_frame():
    kept, timing = _resample([k / 30 for k in range(9)], 15, [1 / 30] * 9)
    assert kept == [0, 2, 4, 6, 8]  # times 0, 2/30, ..., 8/30 < 0.3 s, the video's end
    assert timing.frames == 5 and timing.source_frames == 9 and timing.resampled
    assert timing.duration_s == pytest.approx(0.3) and timing.source_fps == pytest.approx(30)
    kept, _ = _resample([k / 30 for k in range(10)], 15)  # 1/3 s: 5/15 is the end, not a frame
    assert kept == [0, 2, 4, 6, 8]


def test_same_rate_keeps_every_frame_and_times_may_start_anywhere():
    kept, timing = _resample([2.5 + k / 15 for k in range(7)], 15)
    assert kept == list(range(7)) and timing.duration_s == pytest.approx(7 / 15)


def test_upsampling_repeats_frames_ties_keep_the_earlier():
    kept, timing = _resample([0, 1 / 15, 2 / 15], 30)
    assert kept == [0, 0, 1, 1, 2, 2] and timing.fps == 30


def test_variable_rate_takes_the_nearest_frame_in_time():
    times = [0, 0.033, 0.05, 0.12, 0.133, 0.3, 0.31, 0.32, 0.5]
    durations = [b - a for a, b in zip(times[:-1], times[1:], strict=True)] + [1 / 30]
    kept, timing = _resample(times, 15, durations)
    # targets 0, .067, .133, .2, .267, .333, .4, .467 (.533 is the end)
    assert kept == [0, 2, 4, 4, 5, 7, 7, 8]
    assert timing.duration_s == pytest.approx(0.5 + 1 / 30)


def test_without_a_rate_every_frame_is_kept_and_timed():
    kept, timing = _resample([k / 25 for k in range(5)], None)
    assert kept == list(range(5)) and not timing.resampled
    assert timing.fps == pytest.approx(25) and timing.duration_s == pytest.approx(0.2)


def test_no_frames_and_bad_rates():
    assert _resample([], 15)[1].frames == 0
    with pytest.raises(ValueError, match="fps 0 is invalid"):
        TimedFrames([], 0)


# -- real files ---------------------------------------------------------------------------------


class _TinyTower(torch.nn.Module):
    """(B, C, window, H, W) -> (B, 1024): a deterministic function of the window's pixels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool3d((1, 4, 4))
        self.linear = torch.nn.Linear(channels * 16, 1024)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(x).flatten(1))


@pytest.fixture(scope="module")
def towers() -> dict[str, torch.nn.Module]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return {"i3d_rgb": _TinyTower(3).eval(), "i3d_flow": _TinyTower(2).eval()}


def tiny_extractor(towers, fps=None) -> FeatureExtractor:
    return FeatureExtractor(towers, ExtractionSettings(**TINY, device="cpu", fps=fps))


def _decode(path: Path) -> np.ndarray:
    return np.stack(list(timed_frames(path)))


def write_vfr_video(path: Path, frames: np.ndarray, times_ms: list[int]) -> Path:
    """Encode frames shown at the given times (milliseconds): a variable-frame-rate file."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for array, time in zip(frames, times_ms, strict=True):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = time, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """A 2 s clip at 30 fps, and the same clip re-encoded at 15 fps (every other decoded
    frame, as a re-encode does)."""
    folder = tmp_path_factory.mktemp("clips")
    fast = write_video(folder / "clip30.mp4", moving_square_frames(60, step=1), 30, BIT_RATE)
    slow = write_video(folder / "clip15.mp4", _decode(fast)[::2], 15, BIT_RATE)
    return {"30": fast, "15": slow}


def test_a_clip_at_30_and_at_15_fps_give_the_same_features(towers, clips, tmp_path):
    out = {}
    for rate, clip in clips.items():
        summary = extract_videos(clip, tmp_path / rate, tiny_extractor(towers, fps=15),
                                 progress=False)
        assert summary.extracted == [clip.stem]
        out[rate] = {s: np.load(tmp_path / rate / f"features_{s}" / f"{clip.stem}.npy")
                     for s in ("i3d_rgb", "i3d_flow")}
        info = json.loads((tmp_path / rate / "video_info" / f"{clip.stem}.json").read_text())
        assert info["fps"] == 15 and info["frames"] == 30 and info["resampled"]
        assert info["source_fps"] == pytest.approx(float(rate))
        assert info["duration_s"] == pytest.approx(2.0)
        manifest = json.loads((tmp_path / rate / "manifest.json").read_text())
        assert manifest["videos"][0]["duration_s"] == pytest.approx(2.0)
        assert manifest["recipe"]["fps"] == 15
    for stream in ("i3d_rgb", "i3d_flow"):
        fast, slow = out["30"][stream], out["15"][stream]
        assert fast.shape == slow.shape == (1024, 30)
        error = np.linalg.norm(fast - slow) / np.linalg.norm(fast)
        shifted = np.linalg.norm(fast[:, 1:] - slow[:, :-1]) / np.linalg.norm(fast)
        assert error < 0.05 and error < shifted / 2, (stream, error, shifted)  # codec noise only
    # without the resampling the 30 fps clip gives twice the columns: a model trained at 15 fps
    # would see every action last twice as long
    native = tiny_extractor(towers).extract(clips["30"])
    assert native.num_frames == 60 and native.timing.fps == pytest.approx(30)


def test_a_resumed_run_skips_the_video_and_another_rate_redoes_it(towers, clips, tmp_path):
    clip = clips["30"]
    assert extract_videos(clip, tmp_path, tiny_extractor(towers, 15), progress=False).extracted
    assert extract_videos(clip, tmp_path, tiny_extractor(towers, 15), progress=False).skipped
    again = extract_videos(clip, tmp_path, tiny_extractor(towers, 10), progress=False)
    assert again.extracted == [clip.stem]
    assert np.load(tmp_path / "features_i3d_rgb" / "clip30.npy").shape == (1024, 20)


def test_a_variable_frame_rate_file(towers, tmp_path):
    frames = moving_square_frames(9)
    for k in range(9):  # each frame its own brightness, to see which one was kept
        frames[k, :4, :4] = 20 * k
    times = [0, 33, 50, 120, 133, 300, 310, 320, 500]
    clip = write_vfr_video(tmp_path / "vfr.mp4", frames, times)
    decoded = _decode(clip)
    kept = timed_frames(clip, 15)
    picked = np.stack(list(kept))
    expected = [0, 2, 4, 4, 5, 7, 7, 8]  # as test_variable_rate_takes_the_nearest_frame_in_time
    np.testing.assert_array_equal(picked, decoded[expected])
    assert kept.timing.source_frames == 9 and kept.timing.frames == 8
    result = tiny_extractor(towers, fps=15).extract(clip)
    assert result.num_frames == 8 and result.features["i3d_flow"].shape == (1024, 8)
    assert result.timing.duration_s == pytest.approx(0.5 + 1 / 30, abs=1e-3)


def test_extract_cli_takes_fps(clips, tmp_path, monkeypatch):
    from twostream_das.cli import main
    from twostream_das.extraction import extract as extract_module

    monkeypatch.setattr(extract_module, "load_i3d",
                        lambda path, channels, what: _TinyTower(channels))
    out = tmp_path / "ds"
    args = ["extract", str(clips["30"]), "--out", str(out), "--fps", "15", "--i3d-rgb-weights",
            "r.pt", "--i3d-flow-weights", "f.pt", "--image-size", "32", "--window", "5",
            "--flow-method", "farneback", "--quiet"]
    assert main(args) == 0
    assert np.load(out / "features" / "clip30.npy").shape == (2048, 30)
    assert main([*args[:5], "0", *args[6:]]) == 2  # --fps 0


# -- a 30 fps clip through a 15 fps checkpoint ----------------------------------------------


@pytest.fixture
def checkpoint_15fps(tmp_path) -> Path:
    from _model_helpers import small_config
    from _tiny import CLASSES
    from twostream_das.checkpoint import make_checkpoint, save_checkpoint
    from twostream_das.model.multi_stream import MultiStreamModel

    cfg = small_config("dataset.streams={rgb: {source: i3d_rgb}, flow: {source: i3d_flow}}",
                       "dataset.fps=15")
    dims = {"rgb": 1024, "flow": 1024}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MultiStreamModel.from_config(cfg, dims, len(CLASSES))
    return save_checkpoint(tmp_path / "ckpt15.pt",
                           make_checkpoint(model, cfg, list(CLASSES), dims, epoch=1))


def test_a_30_fps_clip_through_a_15_fps_checkpoint_gets_the_video_s_times(
    checkpoint_15fps, clips, towers, tmp_path, monkeypatch, caplog
):
    from twostream_das.cli import main
    from twostream_das.workflows import prediction

    seen = {}

    def tiny_from_weights(cls, streams, *, settings=None, **kwargs):
        seen["fps"] = settings.fps
        return FeatureExtractor(towers, settings.__class__(**{**TINY, "fps": settings.fps}))

    monkeypatch.setattr(prediction.FeatureExtractor, "from_weights", classmethod(tiny_from_weights))
    out = tmp_path / "pred"
    code = main(["predict", "--checkpoint", str(checkpoint_15fps), "--video", str(clips["30"]),
                 "--out", str(out), "--no-plots", "--quiet", "--steps", "2"])
    assert code == 0
    assert seen["fps"] == 15  # the checkpoint's dataset.fps
    assert np.load(out / "features" / "features_i3d_rgb" / "clip30.npy").shape == (1024, 30)
    segments = json.loads((out / "clip30_segments.json").read_text())["segments"]
    assert segments[0]["start_s"] == 0 and segments[-1]["end_s"] == pytest.approx(2.0)
    video = json.loads((out / "summary.json").read_text())["videos"][0]
    assert video["fps"] == 15 and video["duration_s"] == pytest.approx(2.0)

    # features extracted at the video's own 30 fps: seconds still the video's, and a warning
    native = tmp_path / "native"
    extract_videos(clips["30"], native, tiny_extractor(towers), progress=False)
    out = tmp_path / "pred_native"
    code = main(["predict", "--checkpoint", str(checkpoint_15fps),
                 "--stream", f"rgb={native / 'features_i3d_rgb'}",
                 "--stream", f"flow={native / 'features_i3d_flow'}",
                 "--out", str(out), "--no-plots", "--quiet", "--steps", "2"])
    assert code == 0
    segments = json.loads((out / "clip30_segments.json").read_text())["segments"]
    assert segments[-1]["end_s"] == pytest.approx(2.0)  # 60 frames / 30 fps, not / 15
    assert "extract them again with --fps 15" in caplog.text


def test_videos_of_different_rates_without_fps_get_a_warning(towers, clips, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="twostream_das"):
        extract_videos([clips["30"], clips["15"]], tmp_path, tiny_extractor(towers),
                       progress=False)
    assert "different frame rates (clip30.mp4 30, clip15.mp4 15)" in caplog.text
    assert "pass --fps RATE" in caplog.text
