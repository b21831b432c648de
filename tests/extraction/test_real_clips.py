"""The real short clips in ../shared/data/videos (skipped where that folder is absent)."""

import numpy as np
import pytest
from _extraction_helpers import real_rgb_weights, shared_video

from twostream_das.extraction import ExtractionSettings, FeatureExtractor
from twostream_das.extraction.i3d import InceptionI3d
from twostream_das.extraction.i3d_weights import load_i3d
from twostream_das.extraction.video import iter_frames, probe_video

pytest.importorskip("av")
pytest.importorskip("cv2")


def test_every_frame_is_decoded():
    video = shared_video("carphone_pristine.mp4")
    info = probe_video(video)
    assert (info.num_frames, info.width, info.height) == (120, 176, 144)
    assert sum(1 for _ in iter_frames(video)) == 120


def test_one_feature_per_frame_on_a_real_clip(i3d_models):
    """Both I3D streams with TV-L1 flow; 32x32 inputs and 9-frame windows to stay fast."""
    video = shared_video("carphone_pristine.mp4")
    settings = ExtractionSettings(image_size=32, window=9, batch_size=24)
    result = FeatureExtractor(i3d_models, settings).extract(video)
    assert result.num_frames == 120
    for name in ("i3d_rgb", "i3d_flow"):
        features = result.features[name]
        assert features.shape == (1024, 120) and np.isfinite(features).all()
        assert (features >= 0).all()  # Mixed_5c concatenates ReLU outputs
        assert not np.allclose(features[:, 0], features[:, 60])  # frames differ


@pytest.mark.slow
def test_full_recipe_with_kinetics_rgb_weights():
    """224x224, 21-frame windows, DeepMind's Kinetics RGB weights; FLOW with random weights
    (no FLOW checkpoint is available offline) but the real TV-L1 flow. Minutes on a CPU."""
    video = shared_video("carphone_pristine.mp4")
    models = {"i3d_rgb": load_i3d(real_rgb_weights(), 3), "i3d_flow": InceptionI3d(2)}
    result = FeatureExtractor(models, ExtractionSettings(batch_size=8)).extract(video)
    for name in ("i3d_rgb", "i3d_flow"):
        features = result.features[name]
        assert features.shape == (1024, 120) and np.isfinite(features).all()
        assert (features >= 0).all()
    rgb = result.features["i3d_rgb"]
    # neighbouring frames share 20 of 21 window frames: their features are close
    neighbours = np.linalg.norm(rgb[:, 61] - rgb[:, 60]) / np.linalg.norm(rgb[:, 60])
    assert neighbours < 0.2
