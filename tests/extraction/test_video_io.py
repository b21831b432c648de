import numpy as np
import pytest
from _extraction_helpers import moving_square_frames, write_video

from twostream_das.errors import DataError
from twostream_das.extraction.video import (
    ResizeMode,
    center_crop,
    iter_frames,
    list_videos,
    probe_video,
    resize_for_i3d,
    rgb_to_gray,
    rgb_to_unit_range,
)

pytest.importorskip("av")
pytest.importorskip("cv2")


def test_probe_and_decode_every_frame(tiny_video):
    info = probe_video(tiny_video)
    assert (info.num_frames, info.width, info.height) == (9, 48, 40)
    assert info.fps == pytest.approx(15.0)
    frames = list(iter_frames(tiny_video))
    assert len(frames) == 9
    assert frames[0].shape == (40, 48, 3) and frames[0].dtype == np.uint8
    written = moving_square_frames(9).astype(np.float32)
    assert np.abs(np.stack(frames).astype(np.float32) - written).mean() < 10  # lossy codec
    red, _, blue = frames[0][18, 10].astype(int)  # inside the (230, 200, 60) square: RGB order
    assert red > 180 and blue < 110


def test_list_videos(tmp_path):
    frames = moving_square_frames(3)
    write_video(tmp_path / "b.mp4", frames)
    write_video(tmp_path / "a.mkv", frames)
    (tmp_path / "notes.txt").write_text("not a video")
    assert [p.name for p in list_videos(tmp_path)] == ["a.mkv", "b.mp4"]
    assert list_videos(tmp_path / "b.mp4") == [tmp_path / "b.mp4"]
    write_video(tmp_path / "b.avi", frames)
    with pytest.raises(DataError, match="both write features named b.npy"):
        list_videos(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        list_videos(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no video files"):
        list_videos(tmp_path / "empty")


def test_unreadable_video_is_a_data_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not an mp4 file" * 10)
    with pytest.raises(DataError, match="broken.mp4"):
        probe_video(bad)
    with pytest.raises(DataError, match="broken.mp4"):
        list(iter_frames(bad))


def test_resize_recipes():
    frame = np.zeros((40, 48, 3), np.uint8)
    assert resize_for_i3d(frame, 32, ResizeMode.SQUARE).shape == (32, 32, 3)
    # Kinetics: short side round(32 * 256 / 224) = 37, long side 48 * 37 / 40 = 44.4 -> 44
    resized = resize_for_i3d(frame, 32, ResizeMode.SHORT_SIDE_CROP)
    assert resized.shape == (37, 44, 3)
    assert center_crop(resized, 32).shape == (32, 32, 3)
    assert resize_for_i3d(frame[..., 0], 32, ResizeMode.SQUARE).shape == (32, 32)  # grey too


def test_center_crop_offsets_and_value_scaling():
    array = np.arange(5 * 6).reshape(5, 6)
    np.testing.assert_array_equal(center_crop(array, 3), array[1:4, 2:5])  # round(1.0), round(1.5)
    with pytest.raises(ValueError):
        center_crop(array, 6)
    frame = np.array([[[0, 255, 51]]], np.uint8)
    np.testing.assert_allclose(rgb_to_unit_range(frame)[:, 0, 0], [-1.0, 1.0, -0.6], atol=1e-6)
    assert rgb_to_gray(np.full((2, 2, 3), 200, np.uint8)).tolist() == [[200, 200], [200, 200]]
