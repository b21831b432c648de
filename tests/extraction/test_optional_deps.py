import sys

import pytest

from twostream_das.cli import build_parser
from twostream_das.errors import TwoStreamDASError
from twostream_das.extraction._deps import OptionalDependencyError
from twostream_das.extraction.flow import make_flow_fn
from twostream_das.extraction.video import iter_frames


def test_missing_video_extra_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(OptionalDependencyError, match=r"twostream_das\[video\]"):
        list(iter_frames(tmp_path / "clip.mp4"))
    with pytest.raises(TwoStreamDASError, match="'cv2'"):
        make_flow_fn("tvl1")
    build_parser().parse_args(["extract", "x.mp4", "--out", str(tmp_path)])  # CLI still loads
