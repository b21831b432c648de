import sys

import pytest

from twostream_das.cli import build_parser, main
from twostream_das.errors import TwoStreamDASError
from twostream_das.extraction._deps import OptionalDependencyError
from twostream_das.extraction.flow import make_flow_fn
from twostream_das.extraction.video import iter_frames


def test_missing_video_extra_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(OptionalDependencyError, match=r"-m pip install 'av[<>=,0-9]+' 'opencv-"):
        list(iter_frames(tmp_path / "clip.mp4"))
    with pytest.raises(TwoStreamDASError, match="'cv2'"):
        make_flow_fn("tvl1")
    build_parser().parse_args(["extract", "x.mp4", "--out", str(tmp_path)])  # CLI still loads


def test_extract_without_the_video_extra_prints_the_pip_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "av", None)
    monkeypatch.setitem(sys.modules, "cv2", None)
    (tmp_path / "clip.mp4").write_bytes(b"not decoded")
    assert main(["extract", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{sys.executable} -m pip install 'av" in err[0], err
