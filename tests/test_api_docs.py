"""docs/API.md runs: every ``python`` block, in order, in one namespace, in a folder laid out as
the page says (the tiny dataset as ``data/mydata``, its config as ``mydata.yaml``, a 30 fps clip
as ``videos/P05_tea.mp4``). Feature extraction uses tiny stand-in networks (no weight files)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny import tiny_overrides, write_tiny_dataset
from twostream_das.config import load_config, to_yaml

PAGE = Path(__file__).resolve().parents[1] / "docs" / "API.md"


def page_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


class _Tower(torch.nn.Module):
    """(B, C, window, H, W) -> (B, dim), standing in for an I3D tower."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool3d((1, 2, 2))
        self.linear = torch.nn.Linear(channels * 4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(x).flatten(1))


def _clip(path: Path, frames: int = 60, fps: int = 30) -> Path:
    av = pytest.importorskip("av")
    pytest.importorskip("cv2")
    path.parent.mkdir(parents=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 48, 40, "yuv420p"
        for t in range(frames):
            image = np.full((40, 48, 3), 60, np.uint8)
            image[10:20, t % 36 : t % 36 + 12] = 220  # a square moving right
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def notebook_folder(tmp_path, monkeypatch):
    root = write_tiny_dataset(tmp_path / "data" / "mydata")
    for folder, suffix in (("features_rgb", ".npy"), ("features_flow", ".npy"),
                           ("groundTruth", ".txt")):
        shutil.copy(root / folder / f"v1{suffix}", root / folder / f"P01_tea{suffix}")
    cfg = load_config("demo", tiny_overrides(Path("data/mydata")))
    (tmp_path / "mydata.yaml").write_text(to_yaml(cfg))
    _clip(tmp_path / "videos" / "P05_tea.mp4")
    monkeypatch.chdir(tmp_path)

    from twostream_das.extraction import ExtractionSettings, FeatureExtractor, FeatureStream
    from twostream_das.workflows import prediction

    monkeypatch.setattr(prediction, "extraction_streams", lambda loaded: {
        "rgb": FeatureStream.I3D_RGB, "flow": FeatureStream.I3D_FLOW})

    def from_weights(cls, streams, *, settings=None, **weights):
        assert weights["i3d_rgb_weights"] == "rgb_imagenet.pt"  # the page's files reach it
        with torch.random.fork_rng():
            torch.manual_seed(0)
            towers = {"i3d_rgb": _Tower(3, 6), "i3d_flow": _Tower(2, 5)}
        tiny = ExtractionSettings(image_size=32, window=5, flow_method="farneback",
                                  device="cpu", fps=settings.fps)
        return FeatureExtractor(towers, tiny)

    monkeypatch.setattr(FeatureExtractor, "from_weights", classmethod(from_weights))
    return tmp_path


def test_every_snippet_of_the_api_page_runs(notebook_folder, capsys):
    namespace: dict = {}
    for number, block in enumerate(page_blocks(), start=1):
        code = compile(block, f"docs/API.md block {number}", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation
    printed = capsys.readouterr().out
    assert "LoadedModel(streams=(rgb=6, flow=5), classes=4" in printed
    pred, preds, clip = namespace["pred"], namespace["preds"], namespace["clip"]
    assert pred.uncertainty.shape == (pred.num_frames,) and pred.samples == 4
    assert all(seg.uncertainty is not None for seg in pred.segments)
    assert {"txt", "segments_csv", "segments_json", "probs", "uncertainty", "png"} <= set(
        namespace["files"])
    assert len(preds) == 11 and (notebook_folder / "out" / "all" / "review.csv").is_file()
    assert clip.fps == 15.0 and clip.num_frames == 30  # 2 s at 30 fps, resampled to 15
    assert clip.duration_s == pytest.approx(2.0) and clip.segments[-1].end_s == pytest.approx(2.0)
    assert set(namespace["scores"]["fused"]) >= {"acc", "edit", "f1@50"}
