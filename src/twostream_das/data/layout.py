"""The MS-TCN dataset layout: ``mapping.txt``, ``splits/*.bundle`` and ``groundTruth/*.txt``.

::

    <root>/mapping.txt                  "<id> <class name>" per line, ids 0..C-1
    <root>/splits/<part>.split<k>.bundle  one "<video>.txt" per line (part: train, test, val)
    <root>/groundTruth/<video>.txt      one class name per frame

Every text file may use ``\\n`` or ``\\r\\n`` line endings, carry a UTF-8 byte-order mark and
contain blank lines (all ignored). Anything else that is wrong raises :class:`DataError` naming
the file (and line), the value found and what was expected.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError

logger = logging.getLogger(__name__)

SPLIT_PARTS: tuple[str, ...] = ("train", "test", "val")
MAPPING_FILE = "mapping.txt"
SPLITS_DIR = "splits"
GROUND_TRUTH_DIR = "groundTruth"


@dataclass(frozen=True)
class LabelMap:
    """Class names in id order (``names[i]`` is class ``i``).

    Args:
        names: the class names, index = class id.
        source: where the names came from (used in error messages only).
    """

    names: tuple[str, ...]
    source: str = field(default="mapping.txt", compare=False)
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "_ids", {name: i for i, name in enumerate(self.names)})
        if len(self._ids) != len(self.names):
            dup = next(n for n in self.names if self.names.count(n) > 1)
            raise DataError(
                f"{self.source}: class name {dup!r} appears twice; expected unique names"
            )

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._ids

    def index(self, name: str) -> int:
        """The id of class ``name``; DataError when it is not in the map."""
        try:
            return self._ids[name]
        except KeyError:
            raise DataError(
                f"class {name!r} is not in {self.source}; expected one of {_preview(self.names)}"
            ) from None


def read_mapping(path: str | Path) -> LabelMap:
    """Read ``mapping.txt``: one ``<id> <name>`` per line, ids exactly 0..C-1 (any order).

    Raises:
        DataError: missing file, malformed line, duplicate id or name, ids not contiguous from 0.
    """
    path = Path(path)
    by_id: dict[int, tuple[str, int]] = {}  # id -> (name, line number)
    seen_names: dict[str, int] = {}  # name -> line number
    for lineno, line in read_text_lines(path, "mapping file"):
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not _is_int(parts[0]):
            raise DataError(f"{path} line {lineno}: {line!r}; expected '<integer id> <class name>'")
        class_id, name = int(parts[0]), parts[1].strip()
        if class_id in by_id:
            raise DataError(
                f"{path} line {lineno}: id {class_id} already used on line {by_id[class_id][1]}; "
                "expected unique ids"
            )
        if name in seen_names:
            raise DataError(
                f"{path} line {lineno}: class name {name!r} already used on line "
                f"{seen_names[name]}; expected unique names"
            )
        by_id[class_id] = (name, lineno)
        seen_names[name] = lineno
    if not by_id:
        raise DataError(f"{path} is empty; expected one '<id> <class name>' line per class")
    expected = set(range(len(by_id)))
    if set(by_id) != expected:
        wrong = sorted(set(by_id) - expected)
        missing = sorted(expected - set(by_id))
        raise DataError(
            f"{path}: ids {_preview(wrong)} found while {_preview(missing)} are missing; expected "
            f"contiguous ids 0..{len(by_id) - 1}"
        )
    return LabelMap(tuple(by_id[i][0] for i in range(len(by_id))), source=str(path))


def check_background(label_map: LabelMap, background: Sequence[str]) -> None:
    """Every ``dataset.background`` name must be a class of the mapping.

    Raises:
        DataError: naming the first unknown name, the mapping file and its classes.
    """
    unknown = [name for name in background if name not in label_map]
    if unknown:
        raise DataError(
            f"dataset.background names {unknown[0]!r}, which is not a class of "
            f"{label_map.source}; expected names of its classes ({_preview(label_map.names)}), "
            "or [] for no background class"
        )


def split_path(root: str | Path, part: str, fold: int) -> Path:
    """``<root>/splits/<part>.split<fold>.bundle``."""
    return Path(root) / SPLITS_DIR / f"{part}.split{fold}.bundle"


def ground_truth_path(root: str | Path, video: str) -> Path:
    """``<root>/groundTruth/<video>.txt``."""
    return Path(root) / GROUND_TRUTH_DIR / f"{video}.txt"


def available_folds(root: str | Path) -> list[int]:
    """Fold numbers k with a ``splits/test.split<k>.bundle`` under the dataset root."""
    folder = Path(root) / "splits"
    found = sorted(
        int(m.group(1))
        for p in folder.glob("test.split*.bundle")
        if (m := re.fullmatch(r"test\.split(\d+)\.bundle", p.name))
    )
    if not found:
        raise DataError(f"{folder} has no test.split<k>.bundle files; expected at least one fold")
    return found


def read_split(root: str | Path, part: str, fold: int, check_labels: bool = True) -> list[str]:
    """Video names (without ``.txt``) of ``splits/<part>.split<fold>.bundle``, in file order.

    Args:
        root: dataset folder.
        part: ``train``, ``test`` or ``val``.
        fold: split number k (1-based in every standard dataset).
        check_labels: also require ``groundTruth/<video>.txt`` for every listed video.

    Raises:
        DataError: missing or empty bundle, a video listed twice, a listed video without labels.
    """
    if part not in SPLIT_PARTS:
        raise DataError(f"split part {part!r} is invalid; expected one of {', '.join(SPLIT_PARTS)}")
    path = split_path(root, part, fold)
    if not path.is_file():
        found = sorted(p.name for p in path.parent.glob("*.bundle")) if path.parent.is_dir() else []
        raise DataError(
            f"split file {path} does not exist; expected {part}.split{fold}.bundle in "
            f"{path.parent} (found: {_preview(found) if found else 'no .bundle files'})"
        )
    first_line = read_bundle(path)
    names = list(first_line)
    if check_labels:
        for name in names:
            gt = ground_truth_path(root, name)
            if not gt.is_file():
                raise DataError(
                    f"{path} line {first_line[name]}: video {name!r} has no ground truth; "
                    f"expected the file {gt}"
                )
    return names


def read_bundle(path: str | Path) -> dict[str, int]:
    """The videos of a split bundle (``<video>.txt`` per line) -> their line numbers, in order.

    Raises:
        DataError: missing, unreadable or empty file, or a video listed twice.
    """
    path = Path(path)
    first_line: dict[str, int] = {}
    for lineno, line in read_text_lines(path, "split file"):
        name = line[: -len(".txt")] if line.endswith(".txt") else line
        if name in first_line:
            raise DataError(
                f"{path} line {lineno}: video {name!r} already listed on line {first_line[name]}; "
                "expected each video once"
            )
        first_line[name] = lineno
    if not first_line:
        raise DataError(f"split file {path} is empty; expected one '<video>.txt' per line")
    return first_line


def read_labels(path: str | Path, label_map: LabelMap) -> np.ndarray:
    """One groundTruth file as class ids.

    Returns:
        (T,) int64, one id per frame (non-blank line).

    Raises:
        DataError: missing or empty file, or a class name not in ``label_map`` (with line number).
    """
    path = Path(path)
    ids: list[int] = []
    for lineno, name in read_text_lines(path, "groundTruth file"):
        if name not in label_map:
            raise DataError(
                f"{path} line {lineno}: label {name!r} is not in {label_map.source}; expected one "
                f"of {_preview(label_map.names)}"
            )
        ids.append(label_map.index(name))
    if not ids:
        raise DataError(f"groundTruth file {path} is empty; expected one class name per frame")
    return np.asarray(ids, dtype=np.int64)


def video_groups(names: Sequence[str], pattern: Optional[str]) -> dict[str, str]:
    """video -> its group (person, session): the first capture group of ``pattern`` searched in
    the name, or the whole match when the pattern has no group. Without a pattern every video is
    its own group.

    Raises:
        DataError: a name the pattern does not match.
    """
    if pattern is None:
        return {n: n for n in names}
    regex = re.compile(pattern)
    out = {}
    for name in names:
        found = regex.search(name)
        if found is None:
            raise DataError(
                f"video {name!r} does not match dataset.val_group '{pattern}'; expected every "
                "training video's name to contain its group (for example the person)"
            )
        out[name] = found.group(1) if regex.groups else found.group(0)
    return out


def train_val_split(
    root: str | Path,
    fold: int,
    train_names: Sequence[str],
    fraction: float,
    seed: int,
    group: Optional[str] = None,
) -> tuple[list[str], list[str]]:
    """Split a fold's training videos into (train, validation), both sorted.

    With ``splits/val.split<fold>.bundle`` present, its videos are the validation set (each must
    be among ``train_names``) and the rest train. Otherwise, without ``group``,
    ``round(fraction * n)`` videos (rounded half up; at least 1 when ``fraction > 0`` and
    ``n >= 2``; never all of them) are drawn with ``numpy.random.default_rng(seed)`` from the
    sorted names. With ``group`` (:func:`video_groups`), whole groups are drawn in a seeded order
    until they hold at least that many videos, never every group. Either way the result depends
    only on the set of names, ``fraction``, ``seed`` and ``group``, and with ``group`` no group
    has videos on both sides.

    Raises:
        DataError: a val bundle naming a video that is not in the training split, or all of
        its videos, or sharing a group with the videos that train; one group only.
    """
    names = sorted(set(train_names))
    groups = video_groups(names, group)
    if split_path(root, "val", fold).is_file():
        chosen = _val_bundle(root, fold, names)
    elif group is None:
        count = _val_count(fraction, len(names))
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(names), size=count, replace=False) if count else []
        chosen = {names[int(i)] for i in picks}
    else:
        chosen = _draw_groups(groups, _val_count(fraction, len(names)), seed, group)
    train = [n for n in names if n not in chosen]
    shared = sorted({groups[n] for n in train} & {groups[n] for n in chosen})
    if group is not None and shared:
        example = next(n for n in sorted(chosen) if groups[n] == shared[0])
        raise DataError(
            f"{split_path(root, 'val', fold)}: validation video {example!r} is of group "
            f"{shared[0]!r} (dataset.val_group '{group}'), which also has training videos; "
            "expected validation groups that do not train"
        )
    return train, sorted(chosen)


def _val_bundle(root: str | Path, fold: int, names: list[str]) -> set[str]:
    """The validation videos ``splits/val.split<fold>.bundle`` names, checked against ``names``."""
    val = read_split(root, "val", fold)
    stray = [v for v in val if v not in set(names)]
    if stray:
        raise DataError(
            f"{split_path(root, 'val', fold)}: video {stray[0]!r} is not in "
            f"{split_path(root, 'train', fold)}; expected validation videos taken from the "
            "fold's training videos"
        )
    chosen = set(val)
    if chosen >= set(names):
        raise DataError(
            f"{split_path(root, 'val', fold)} lists all {len(names)} training videos of "
            f"{split_path(root, 'train', fold)}; expected some left to train on (the "
            "validation videos are taken out of the fold's training videos)"
        )
    logger.info("fold %d: %d validation videos from %s", fold, len(chosen),
                split_path(root, "val", fold))
    return chosen


def _draw_groups(groups: dict[str, str], count: int, seed: int, pattern: str) -> set[str]:
    """Whole groups, in an order drawn from ``seed``, until they hold ``count`` videos."""
    if count == 0:
        return set()
    distinct = sorted(set(groups.values()))
    if len(distinct) < 2:
        raise DataError(
            f"dataset.val_group '{pattern}' puts all {len(groups)} training videos in one group "
            f"({distinct[0]!r}); expected at least two groups, so that one can validate without "
            "its videos training (or set dataset.val_group=null, or write splits/val bundles)"
        )
    order = np.random.default_rng(seed).permutation(len(distinct))
    chosen: set[str] = set()
    for taken, index in enumerate(order, start=1):
        chosen |= {n for n, g in groups.items() if g == distinct[int(index)]}
        if len(chosen) >= count or taken == len(distinct) - 1:
            break
    return chosen


def _val_count(fraction: float, n: int) -> int:
    """How many of ``n`` training videos to hold out for validation."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation fraction {fraction!r} is invalid; expected a value in [0, 1)")
    if fraction == 0.0 or n < 2:
        return 0
    return min(max(int(math.floor(fraction * n + 0.5)), 1), n - 1)


def read_text_lines(path: Path, what: str) -> list[tuple[int, str]]:
    """Non-blank lines of a text file, stripped, with 1-based line numbers.

    Accepts ``\\n``, ``\\r\\n`` and ``\\r`` endings and a UTF-8 byte-order mark.

    Raises:
        DataError: the file is missing, unreadable or not UTF-8 text.
    """
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{what} {path} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except OSError as err:
        raise DataError(f"cannot read {what} {path}: {err.strerror or err}") from None
    lines = text.splitlines()
    return [(i + 1, line.strip()) for i, line in enumerate(lines) if line.strip()]


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _preview(items: Sequence[object], limit: int = 12) -> str:
    """``a, b, c`` (with ``... (N in all)`` past ``limit`` items)."""
    shown = ", ".join(str(x) for x in list(items)[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"
