"""``init-config``: a commented config for a dataset folder nobody has configured yet.

It reads what the folder holds and writes it down explicitly, so nothing is guessed at training
time: the classes (``mapping.txt``), the folds (``splits/``), the feature folders (every
sub-folder of ``.npy`` files, the standard 2048-d ``features/`` as its two I3D halves), and each
stream's dimension and orientation. The orientation is *detected* here, from the files of every
video the splits name: the feature axis is the one of the same size in every file, and the other
must follow the label lengths (within ``dataset.length_tolerance``); where both or neither axis
does, it asks for ``--orientation FOLDER=DxT|TxD``. The frame rate cannot be read from features,
so it is asked for (``--fps``; or read from ``video_info/``, which ``extract`` writes). A folder
without ``splits/`` gets them (:mod:`.data.folds`): k folds by video, or by a group taken from the
video names (``--group 'P(\\d+)'``), written as the ordinary ``splits/*.bundle`` files once the
config is. Feature standardisation (``dataset.standardize``) is on, so raw
features of any scale train. The file is written in the current config layout (named streams,
``fusion.weights`` per stream), read back with :func:`~twostream_das.config.load_config`, and
never written over an existing file.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..atomic import atomic_create_text
from ..config import (
    STREAM_NAME_CHARS,
    DatasetConfig,
    FeatureSource,
    Orientation,
    StreamDataConfig,
    load_config,
)
from ..data.features import I3D_DIM, I3D_FOLDER, I3D_HALF
from ..data.folds import has_splits, plan_splits, write_splits
from ..data.layout import (
    GROUND_TRUTH_DIR,
    MAPPING_FILE,
    SPLIT_PARTS,
    SPLITS_DIR,
    LabelMap,
    available_folds,
    ground_truth_path,
    read_labels,
    read_mapping,
    read_split,
    split_path,
)
from ..errors import ConfigError, DataError
from ..extraction.store import VIDEO_INFO_DIR

logger = logging.getLogger(__name__)

DEFAULT_OUT = "twostream_das.yaml"
"""The file written when ``--out`` is not given: ``DATASET_DIR/twostream_das.yaml``."""

I3D_SOURCES = {"i3d_rgb": FeatureSource.I3D_RGB, "i3d_flow": FeatureSource.I3D_FLOW}
"""``--streams`` items that name a half of the standard ``features/`` files."""

EXTRACTED_HALVES = ("features_i3d_rgb", "features_i3d_flow")
"""What ``extract`` writes beside ``features/``: each I3D stream alone (the same numbers)."""

_PLAIN = re.compile(r"[A-Za-z0-9_./-]+")  # written in YAML without quotes


@dataclass(frozen=True)
class FoundStream:
    """One stream of the written config and what the files showed."""

    name: str
    spec: StreamDataConfig  # source, folder, orientation, dim
    files: int  # .npy files in its folder
    detected: bool  # orientation read from the files (False: given with --orientation)


def feature_folders(root: Path) -> list[str]:
    """Sub-folders of ``root`` holding ``.npy`` files (not groundTruth/ or splits/), sorted."""
    skip = {GROUND_TRUTH_DIR, SPLITS_DIR}
    return sorted(
        p.name for p in root.iterdir()
        if p.is_dir() and p.name not in skip and any(p.glob("*.npy"))
    )


def file_shapes(root: Path, folder: str, lengths: Mapping[str, int]) -> list[tuple[int, int]]:
    """The stored 2-D shape of ``root/folder/<video>.npy`` for every video of ``lengths``.

    Raises:
        DataError: a video without a file there, an unreadable file, or one that is not 2-D.
    """
    shapes = []
    for video in lengths:
        path = root / folder / f"{video}.npy"
        if not path.is_file():
            raise DataError(
                f"{path} does not exist; expected a file for every video of the splits in "
                f"{root / folder} (or leave the folder out: --streams)"
            )
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"cannot read {path}: {_first_line(err)}; expected a .npy array "
                            "of numbers") from None
        if len(shape) != 2:
            raise DataError(f"{path} has shape {shape}; expected a 2-D (D, T) or (T, D) array")
        shapes.append((int(shape[0]), int(shape[1])))
    return shapes


def detect_layout(
    root: Path,
    folder: str,
    lengths: Mapping[str, int],
    tolerance: int,
    given: Optional[Orientation] = None,
) -> tuple[int, Orientation]:
    """(feature dim, orientation) of ``root/folder`` from its files.

    Args:
        lengths: video -> label length, for every video the splits name.
        tolerance: frames a file may differ from its labels (``dataset.length_tolerance``).
        given: the orientation from ``--orientation`` (then only checked against the files).

    Raises:
        DataError: a missing or bad file; the axes cannot be told apart (then
        ``--orientation FOLDER=DxT|TxD`` settles it); or no orientation fits the files.
    """
    shapes = file_shapes(root, folder, lengths)
    frames = list(lengths.values())
    fitting = [o for o in Orientation if _fits(shapes, frames, o, tolerance)]
    found = ", ".join(f"{s} for {n} labels" for s, n in zip(shapes[:3], frames[:3], strict=True))
    if given is not None:
        if given not in fitting:
            raise DataError(
                f"{root / folder} read as {given.value} (--orientation) has files {found}; "
                f"expected the same feature size in every file and the frames following the "
                f"label lengths (within {tolerance})"
            )
        return _dim(shapes[0], given), given
    if not fitting:
        raise DataError(
            f"{root / folder} has files {found}: neither axis is of one size in every file with "
            f"the other following the label lengths (within {tolerance} frames); expected "
            f"(D, T) or (T, D) files of one feature size D"
        )
    if len(fitting) > 1:
        raise DataError(
            f"cannot tell the feature axis of {root / folder} from its files ({found}): either "
            f"axis could be it; give --orientation {folder}=DxT or {folder}=TxD"
        )
    return _dim(shapes[0], fitting[0]), fitting[0]


def _dim(shape: tuple[int, int], orientation: Orientation) -> int:
    return shape[0] if orientation is Orientation.DxT else shape[1]


def _fits(
    shapes: Sequence[tuple[int, int]], frames: Sequence[int], orientation: Orientation,
    tolerance: int,
) -> bool:
    """Every file has the same size on the feature axis and its labels' length on the other."""
    d_axis = 0 if orientation is Orientation.DxT else 1
    dims = {shape[d_axis] for shape in shapes}
    return len(dims) == 1 and all(
        abs(shape[1 - d_axis] - n) <= tolerance for shape, n in zip(shapes, frames, strict=True)
    )


def parse_streams(text: str) -> list[tuple[Optional[str], str]]:
    """``--streams`` items, comma-separated ``[NAME=]SOURCE``: (name or None, source), where
    SOURCE is a folder of the dataset or ``i3d_rgb`` / ``i3d_flow`` (a half of ``features/``).

    Raises:
        ConfigError: an empty list or item.
    """
    items = [part.strip() for part in text.split(",")]
    if not items or not all(items):
        raise ConfigError(
            f"--streams {text!r} is invalid; expected a comma list of [NAME=]FOLDER (or "
            "i3d_rgb / i3d_flow), e.g. rgb=features_rgb,flow=i3d_flow"
        )
    out = []
    for item in items:
        name, _, source = item.rpartition("=")
        if not source or "=" in item and not name:
            raise ConfigError(f"--streams item {item!r} is invalid; expected [NAME=]FOLDER")
        out.append((name or None, source))
    return out


def default_streams(root: Path, lengths: Mapping[str, int]) -> list[tuple[Optional[str], str]]:
    """Every feature folder found (``features_rgb``, then ``features_flow``, then the others by
    name); the standard ``features/`` (2048 rows) as its two halves, and then not the
    ``features_i3d_rgb/`` and ``features_i3d_flow/`` that ``extract`` writes beside it."""
    first = {"rgb": 0, "flow": 1}
    folders = sorted(feature_folders(root), key=lambda f: first.get(_stream_name(f), 2))
    if not folders:
        raise DataError(
            f"{root} has no folder of .npy feature files; expected one per stream (e.g. "
            "features_rgb/<video>.npy) or the standard features/ (2048, T) I3D files"
        )
    out: list[tuple[Optional[str], str]] = []
    standard = I3D_FOLDER in folders and _standard_i3d(root, lengths)
    for folder in folders:
        if folder == I3D_FOLDER and standard:
            out += [(None, "i3d_rgb"), (None, "i3d_flow")]
        elif standard and folder in EXTRACTED_HALVES:  # extract's copies of features/' halves
            logger.info("%s/ holds the same features as a half of %s/; not a stream of its own "
                        "(--streams to choose otherwise)", folder, I3D_FOLDER)
        else:
            out.append((None, folder))
    return out


def _standard_i3d(root: Path, lengths: Mapping[str, int]) -> bool:
    """``features/`` holds (2048, T) files following the labels (METHOD.md section 2)."""
    first = next(iter(lengths))
    path = root / I3D_FOLDER / f"{first}.npy"
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError, EOFError):
        return False
    return len(shape) == 2 and shape[0] == I3D_DIM and shape[1] != I3D_DIM


def find_streams(
    root: Path,
    lengths: Mapping[str, int],
    wanted: Sequence[tuple[Optional[str], str]],
    orientations: Mapping[str, Orientation],
    tolerance: int,
) -> list[FoundStream]:
    """The config's streams, named and described from their files.

    Raises:
        DataError: a source that is not a folder of ``.npy`` files, a bad file, an unclear
        orientation, or two streams with one name.
        ConfigError: ``--orientation`` naming a folder that is not a stream.
    """
    folders = feature_folders(root)
    unused = set(orientations) - {s for _, s in wanted}
    if unused:
        raise ConfigError(
            f"--orientation names {sorted(unused)[0]!r}, which is not a stream folder here; "
            f"expected one of {', '.join(s for _, s in wanted if s not in I3D_SOURCES)}"
        )
    found: list[FoundStream] = []
    for name, source in wanted:
        if source in I3D_SOURCES:
            dim, orientation = detect_layout(root, I3D_FOLDER, lengths, tolerance)
            if (dim, orientation) != (I3D_DIM, Orientation.DxT):
                raise DataError(
                    f"{root / I3D_FOLDER} holds {dim}-d features stored {orientation.value}; "
                    f"expected the standard ({I3D_DIM}, T) I3D files for {source}"
                )
            spec = StreamDataConfig(source=I3D_SOURCES[source], dim=I3D_HALF)
            found.append(FoundStream(name or "", spec, _count(root, I3D_FOLDER), True))
            continue
        if source not in folders:
            raise DataError(
                f"--streams names {source!r}, which is not a folder of .npy files in {root}; "
                f"found: {', '.join(folders) or 'none'} (or i3d_rgb / i3d_flow)"
            )
        given = orientations.get(source)
        dim, orientation = detect_layout(root, source, lengths, tolerance, given)
        spec = StreamDataConfig(FeatureSource.FOLDER, source, orientation, dim)
        found.append(FoundStream(name or "", spec, _count(root, source), given is None))
    return _named(found, [name for name, _ in wanted])


def _count(root: Path, folder: str) -> int:
    return sum(1 for _ in (root / folder).glob("*.npy"))


def _named(found: list[FoundStream], given: Sequence[Optional[str]]) -> list[FoundStream]:
    """Names: the given ones; a folder ``features_X`` -> ``X``; the I3D halves ``rgb`` /
    ``flow`` where free, else ``i3d_rgb`` / ``i3d_flow``."""
    taken = {n for n in given if n}
    out = []
    for stream, name in zip(found, given, strict=True):
        if not name and stream.spec.source is FeatureSource.FOLDER:
            name = _stream_name(stream.spec.folder)
            taken.add(name)
        out.append((stream, name))
    named = []
    for stream, name in out:
        if not name:
            short = "rgb" if stream.spec.source is FeatureSource.I3D_RGB else "flow"
            name = short if short not in taken else stream.spec.source.value
            taken.add(name)
        named.append(FoundStream(name, stream.spec, stream.files, stream.detected))
    names = [s.name for s in named]
    bad = [n for n in names if not set(n) <= STREAM_NAME_CHARS or n == "fused"]
    twice = sorted({n for n in names if names.count(n) > 1})
    if bad or twice:
        raise DataError(
            f"stream name {(bad or twice)[0]!r} is {'invalid' if bad else 'given twice'}; "
            "expected distinct names of lower-case letters, digits, '_' or '-' (not 'fused'): "
            "name them with --streams NAME=FOLDER,..."
        )
    return named


def _stream_name(folder: str) -> str:
    """``features_rgb`` -> ``rgb``; other characters than ``STREAM_NAME_CHARS`` become ``_``."""
    base = folder.removeprefix("features_") or folder
    return "".join(c if c in STREAM_NAME_CHARS else "_" for c in base.lower())


def label_lengths(
    root: Path, label_map: LabelMap
) -> tuple[dict[int, dict[str, int]], dict[str, int]]:
    """(fold -> part -> videos, video -> label length) of every video the splits name; the
    labels are read (and checked against ``label_map``)."""
    folds: dict[int, dict[str, int]] = {}
    lengths: dict[str, int] = {}
    for fold in available_folds(root):
        folds[fold] = {}
        for part in SPLIT_PARTS:
            if part == "val" and not split_path(root, part, fold).is_file():
                continue
            names = read_split(root, part, fold)
            folds[fold][part] = len(names)
            for video in names:
                if video not in lengths:
                    lengths[video] = len(read_labels(ground_truth_path(root, video), label_map))
    return folds, lengths


def render(
    root: Path,
    fps: float,
    class_names: Sequence[str],
    folds: Mapping[int, Mapping[str, int]],
    streams: Sequence[FoundStream],
    group: Optional[str] = None,
) -> str:
    """The commented YAML text (the current layout: ``dataset.streams``, ``fusion.weights``)."""
    background = ["background"] if "background" in class_names else []
    shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
    name = _stream_name(root.name) or "custom"
    weight = 1.0 / len(streams)
    lines = [
        f"# twostream_das config for {root}, written by `twostream-das init-config`.",
        f"# Found: {len(class_names)} classes ({shown});",
        "# folds " + ", ".join(
            f"{k} ({' / '.join(f'{n} {part}' for part, n in parts.items())} videos)"
            for k, parts in folds.items()) + "."
        + (f" Folds made by init-config, grouped by {group!r}." if group else ""),
        "# Check it, then: twostream-das train --config THIS_FILE --fold 1 --out runs/NAME/1",
        "# Every key not set here takes the default of twostream_das/config.py: the GTEA preset's",
        "# network sizes and its 10,000 epochs (--set train.epochs=N train.eval_every=M to",
        "# change them; the presets in twostream_das/configs/ show the other datasets' values).",
        f"name: {_yaml(name)}",
        "dataset:",
        f"  root: {_yaml(str(root))}",
        "  # one model stream each, in this order; drop one with --set dataset.streams.NAME=null",
        "  streams:",
    ]
    for stream in streams:
        spec = stream.spec
        how = "detected from the files" if stream.detected else "given with --orientation"
        if spec.source is FeatureSource.FOLDER:
            lines.append(f"    # {spec.folder}/ ({stream.files} files): {spec.dim}-d, stored "
                         f"{spec.orientation.value} ({how})")
            lines.append(f"    {stream.name}: {{source: folder, folder: {_yaml(spec.folder)}, "
                         f"orientation: {spec.orientation.value}, dim: {spec.dim}}}")
        else:
            half = "rows 0..1023" if spec.source is FeatureSource.I3D_RGB else "rows 1024..2047"
            lines.append(f"    # {half} of the ({I3D_DIM}, T) files in {I3D_FOLDER}/ "
                         f"({stream.files} files)")
            lines.append(f"    {stream.name}: {{source: {spec.source.value}, dim: {spec.dim}}}")
    tolerance = DatasetConfig().length_tolerance
    lines += [
        f"  fps: {float(fps)!r}   # frames per second of the labels and features",
        "  sample_rate: 1   # temporal subsampling (50Salads at 30 fps uses 8)",
        f"  length_tolerance: {tolerance}   # frames a stream may differ from its labels",
        f"  background: [{', '.join(_yaml(b) for b in background)}]   # classes left out of "
        "Edit and F1" + ("" if background else " (no class is named background)"),
        "  val_fraction: 0.15   # share of each fold's training videos held out for selection",
        (f"  val_group: {_yaml(group)}   # validation by whole groups: none also trains"
         if group else "  val_group: null   # a regex naming each video's person/session "
         "(e.g. 'P(\\d+)'): validation then takes whole groups, none of which trains"),
        "  standardize: true   # per-channel (x - mean) / std, fitted on the training videos",
        "fusion:",
        "  # late-fusion weights, used until validation chooses them (grid step fusion.grid_step)",
        "  weights: {" + ", ".join(f"{s.name}: {weight!r}" for s in streams) + "}",
        "",
    ]
    return "\n".join(lines)


def recorded_fps(root: Path) -> float:
    """The features' rate ``extract`` recorded in ``root/video_info/`` when every video has one.

    Raises:
        ConfigError: none recorded, or several rates.
    """
    rates = set()
    for path in sorted((root / VIDEO_INFO_DIR).glob("*.json")):
        try:
            rates.add(float(json.loads(path.read_text())["fps"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    if len(rates) != 1:
        found = f"rates {sorted(rates)}" if rates else "no rate"
        raise ConfigError(f"{root / VIDEO_INFO_DIR} records {found}; give --fps (the frames per "
                          "second of the labels and features)")
    return rates.pop()


def _yaml(text: str) -> str:
    """A YAML scalar for ``text``: as is when plain, else double-quoted (JSON escaping)."""
    return text if _PLAIN.fullmatch(text) and not _looks_typed(text) else json.dumps(text)


def _looks_typed(text: str) -> bool:
    """YAML would read it as a number, bool or null."""
    return text.lower() in {"true", "false", "yes", "no", "on", "off", "null", "~"} or bool(
        re.fullmatch(r"[-+]?(\d[\d_]*)?\.?\d*([eE][-+]?\d+)?", text)
    )


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def init_config(
    dataset: str | Path,
    fps: Optional[float],
    out: Optional[str | Path] = None,
    streams: Optional[Sequence[tuple[Optional[str], str]]] = None,
    orientations: Optional[Mapping[str, Orientation]] = None,
    folds: Optional[int] = None,
    group: Optional[str] = None,
) -> Path:
    """Inspect ``dataset`` and write its config to ``out`` (default
    ``DATASET/twostream_das.yaml``), never over an existing file.

    Args:
        dataset: the dataset folder (MS-TCN layout).
        fps: frames per second of the labels; None: the rate ``extract`` recorded for every
            video in ``video_info/`` (when they all agree).
        out: the config file to write.
        streams: (name or None, source) per stream (:func:`parse_streams`); default every
            feature folder found (:func:`default_streams`).
        orientations: folder -> orientation, for folders whose files do not show it.
        folds: with no ``splits/``, make this many folds (default 4, or fewer groups).
        group: with no ``splits/``, a regular expression whose first group (or match) in a
            video's name is its group; no group is in both training and test of a fold.

    Returns:
        The written file (it loads with :func:`~twostream_das.config.load_config`).

    Raises:
        ConfigError: a bad ``fps``, an existing ``out``, an ``orientations`` folder that is
        not a stream.
        DataError: the folder lacks the layout, or its features are missing or unclear.
    """
    if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps < math.inf):
        raise ConfigError(f"--fps {fps!r} is invalid; expected a finite number > 0")
    root = Path(dataset).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist; expected the folder holding "
                        f"{MAPPING_FILE}, {SPLITS_DIR}/ and {GROUND_TRUTH_DIR}/")
    fps = fps if fps is not None else recorded_fps(root)
    target = Path(out) if out is not None else root / DEFAULT_OUT
    if target.exists():
        raise ConfigError(f"{target} exists; refusing to overwrite it (expected a new file: "
                          "remove it or give --out)")
    label_map = read_mapping(root / MAPPING_FILE)
    planned = None
    if has_splits(root):
        if folds is not None or group is not None:
            raise ConfigError(f"{root / SPLITS_DIR} already holds folds; expected no --folds or "
                              "--group (remove the splits folder to have new ones made)")
        fold_parts, lengths = label_lengths(root, label_map)
    else:
        planned = plan_splits(root, folds, group)
        videos = sorted(v for test in planned for v in test)
        lengths = {v: len(read_labels(ground_truth_path(root, v), label_map)) for v in videos}
        fold_parts = {k: {"train": len(videos) - len(t), "test": len(t)}
                      for k, t in enumerate(planned, start=1)}
    tolerance = DatasetConfig().length_tolerance
    wanted = list(streams) if streams else default_streams(root, lengths)
    found = find_streams(root, lengths, wanted, dict(orientations or {}), tolerance)
    text = render(root, fps, label_map.names, fold_parts, found, group)
    try:
        atomic_create_text(target, text)
    except OSError as err:  # written meanwhile, or not writable
        if target.exists():
            raise ConfigError(f"{target} exists; refusing to overwrite it") from None
        raise ConfigError(f"cannot write {target}: {err.strerror or err}; expected a new file "
                          "in a folder you can write (give --out FILE)") from None
    if planned is not None:
        write_splits(root, planned)
    try:
        load_config(target)
    except ConfigError as err:  # a bug here, not the user's: say so and leave nothing behind
        target.unlink(missing_ok=True)
        raise ConfigError(f"init-config wrote a config that does not load: {err}") from None
    logger.info("wrote %s: %d classes, %d folds, streams %s", target, len(label_map),
                len(fold_parts),
                {s.name: s.spec.dim for s in found})
    return target
