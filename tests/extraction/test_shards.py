from pathlib import Path

import pytest
from _extraction_helpers import moving_square_frames, write_video

from twostream_das.extraction.shards import balance, frame_counts, rank_share


def test_longest_first_onto_the_least_loaded_rank():
    weights = {"a": 9, "b": 6, "c": 5, "d": 4, "e": 4}
    # a:9 -> r0 (0,0: lower rank); b:6 -> r1; c:5 -> r1 (6 < 9); d:4 (name before e) -> r0
    # (9 < 11); e:4 -> r1 (11 < 13)
    assert balance(weights, 2) == [["a", "d"], ["b", "c", "e"]]
    assert balance(weights, 1) == [["a", "b", "c", "d", "e"]]
    assert balance({"x": 1, "y": 1}, 3) == [["x"], ["y"], []]
    shares = balance(weights, 3)
    assert sorted(n for share in shares for n in share) == sorted(weights)  # disjoint, complete
    with pytest.raises(ValueError):
        balance(weights, 0)


def test_shares_from_the_container_frame_counts(tmp_path: Path):
    pytest.importorskip("cv2")
    videos = [write_video(tmp_path / f"{name}.mp4", moving_square_frames(n))
              for name, n in (("long", 9), ("mid", 6), ("short", 4))]
    assert frame_counts(videos) == dict(zip(videos, [9, 6, 4], strict=True))
    assert rank_share(videos, 0, 2) == [videos[0]]
    assert rank_share(videos, 1, 2) == [videos[1], videos[2]]
    assert rank_share(videos, 0, 1) == videos
