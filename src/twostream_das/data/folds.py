"""Cross-validation folds for a dataset without ``splits/``: k folds by video, or by a group
taken from the video's name (the subject, the kitchen, the camera), so that no group is in both
the training and the test videos of a fold. Written as the ordinary ``splits/*.bundle`` files.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from ..atomic import atomic_write_text
from ..errors import ConfigError, DataError
from .layout import GROUND_TRUTH_DIR, SPLITS_DIR, split_path

logger = logging.getLogger(__name__)

DEFAULT_FOLDS = 4


def video_group(video: str, pattern: Optional[re.Pattern[str]]) -> str:
    """The group of ``video``: the first capture group of ``pattern`` (the whole match without
    one); the video itself without a pattern."""
    if pattern is None:
        return video
    match = pattern.search(video)
    if match is None:
        raise DataError(f"video {video!r} does not match --group '{pattern.pattern}'; expected "
                        "every video name to contain its group (e.g. P(\\d+) for P03_cereal)")
    return match.group(1) if pattern.groups else match.group(0)


def make_folds(videos: Sequence[str], folds: int,
               group: Optional[str] = None) -> list[list[str]]:
    """The test videos of each fold; a fold's training videos are all the others.

    Groups (largest first, then by name) go to the fold with the fewest videos so far, so the
    folds are balanced by videos and deterministic.

    Raises:
        ConfigError: fewer than 2 folds, a bad pattern, more folds than groups.
        DataError: a video whose name the pattern does not match.
    """
    if folds < 2:
        raise ConfigError(f"--folds {folds} is invalid; expected 2 or more")
    try:
        pattern = re.compile(group) if group is not None else None
    except re.error as err:
        raise ConfigError(f"--group {group!r} is not a regular expression ({err})") from None
    members: dict[str, list[str]] = defaultdict(list)
    for video in sorted(videos):
        members[video_group(video, pattern)].append(video)
    if len(members) < folds:
        what = f"groups ({', '.join(sorted(members)[:6])})" if group else "videos"
        raise ConfigError(f"{len(members)} {what} cannot make {folds} folds; expected --folds "
                          f"{max(2, len(members))} or fewer")
    tests: list[list[str]] = [[] for _ in range(folds)]
    for key in sorted(members, key=lambda k: (-len(members[k]), _natural(k))):
        target = min(range(folds), key=lambda i: (len(tests[i]), i))
        tests[target].extend(members[key])
    return [sorted(t) for t in tests]


def _natural(text: str) -> list[object]:
    """``P2`` before ``P10``."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def plan_splits(root: Path, folds: Optional[int] = None,
                group: Optional[str] = None) -> list[list[str]]:
    """The test videos of each fold for the videos of ``root/groundTruth/`` (nothing written):
    ``folds`` folds, or ``DEFAULT_FOLDS`` capped at the number of groups."""
    videos = sorted(p.stem for p in (root / GROUND_TRUTH_DIR).glob("*.txt"))
    if len(videos) < 2:
        raise DataError(f"{root / GROUND_TRUTH_DIR} holds {len(videos)} video(s) and "
                        f"{root / SPLITS_DIR} no folds; expected 2 or more videos to make folds "
                        "from (twostream-das import-annotations writes groundTruth/)")
    if folds is None:
        try:
            pattern = re.compile(group) if group else None
        except re.error as err:
            raise ConfigError(f"--group {group!r} is not a regular expression ({err})") from None
        folds = min(DEFAULT_FOLDS, len({video_group(v, pattern) for v in videos}))
    return make_folds(videos, folds, group)


def write_splits(root: Path, tests: Sequence[Sequence[str]]) -> None:
    """Write ``splits/{train,test}.split<k>.bundle``: fold k tests ``tests[k - 1]`` and trains
    on every other video of ``groundTruth/``."""
    videos = sorted({v for test in tests for v in test})
    for k, test in enumerate(tests, start=1):
        chosen = set(test)
        train = [v for v in videos if v not in chosen]
        for part, names in (("train", train), ("test", sorted(test))):
            atomic_write_text(split_path(root, part, k), "".join(f"{v}.txt\n" for v in names))
    logger.info("wrote %d folds in %s (test videos per fold: %s)", len(tests), root / SPLITS_DIR,
                ", ".join(str(len(t)) for t in tests))


def has_splits(root: Path) -> bool:
    return any((root / SPLITS_DIR).glob("test.split*.bundle"))
