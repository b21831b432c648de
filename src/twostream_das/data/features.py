"""Per-stream feature files: location, orientation, checks and length alignment.

A stream (one entry of ``dataset.streams``) reads its features as configured by
:class:`~twostream_das.config.StreamDataConfig`:

- ``source: i3d_rgb`` / ``i3d_flow``: rows 0..1023 / 1024..2047 of the standard
  ``<root>/features/<video>.npy`` of shape (2048, T);
- ``source: folder``: ``<root>/<folder>/<video>.npy`` of any dimension, stored (D, T) or (T, D)
  as ``orientation`` says (never guessed).

Every stream comes back as C-contiguous float32 ``(D, T)`` with finite values, or a
:class:`DataError` naming the file, the value found and what was expected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import PRESETS, DatasetConfig, FeatureSource, Orientation, StreamDataConfig
from ..errors import DataError

logger = logging.getLogger(__name__)

I3D_FOLDER = "features"
I3D_DIM = 2048  # rows of a standard I3D feature file: RGB then FLOW
I3D_HALF = I3D_DIM // 2
I3D_ROWS: dict[FeatureSource, slice] = {  # a stream's rows of the standard file
    FeatureSource.I3D_RGB: slice(0, I3D_HALF),
    FeatureSource.I3D_FLOW: slice(I3D_HALF, I3D_DIM),
}


def feature_path(root: str | Path, video: str, spec: StreamDataConfig) -> Path:
    """Where a stream's features of ``video`` live."""
    folder = I3D_FOLDER if spec.source in I3D_ROWS else spec.folder
    return Path(root) / folder / f"{video}.npy"


def check_stream_folders(data_cfg: DatasetConfig, config_name: str) -> None:
    """Every per-stream folder of ``data_cfg.streams`` exists. Where one is missing but the
    standard ``features/`` folder is there (the usual I3D download), the error says which
    preset reads both streams from it (``<name>_i3d``) or which setting to change.

    Raises:
        DataError: naming the stream, the missing folder and the way out.
    """
    root = Path(data_cfg.root)
    for stream, spec in data_cfg.streams.items():
        if spec.source in I3D_ROWS or (root / spec.folder).is_dir():
            continue
        where = f"dataset.streams.{stream} reads {root / spec.folder}/, which does not exist"
        if not (root / I3D_FOLDER).is_dir():
            raise DataError(f"{where}; expected a folder of <video>.npy feature files there")
        variant = f"{config_name}_i3d"
        if variant in PRESETS:
            fix = f"use --config {variant}, which reads both streams from features/"
        else:
            fix = f"set dataset.streams.{stream}.source=i3d_rgb or i3d_flow"
        raise DataError(
            f"{where}, but {root / I3D_FOLDER}/ (the standard 2048-d I3D features) does: {fix}"
        )


def feature_bytes(paths: Iterable[Path]) -> int:
    """The bytes of a video's feature files (0 for a missing one): proportional to its frames
    at one dimension and dtype, the work sharded runs balance over their ranks."""
    return sum(p.stat().st_size if p.is_file() else 0 for p in paths)


def load_stream(
    root: str | Path, video: str, spec: StreamDataConfig, stream: str = ""
) -> np.ndarray:
    """One stream's features of one video.

    Args:
        root: dataset folder.
        video: video name (file stem).
        spec: the stream's source, folder, orientation and expected dimension.
        stream: the stream's name, for messages only.

    Returns:
        (D, T) float32, C-contiguous, finite.

    Raises:
        DataError: missing or unreadable file, wrong rank or dimension, no frames, NaN or inf.
    """
    path = feature_path(root, video, spec)
    what = f"{stream} features" if stream else "features"
    if not path.is_file():
        raise DataError(
            f"missing {what} file {path} for video {video!r}; expected a .npy file "
            f"({_describe(spec)})"
        )
    if spec.source in I3D_ROWS:
        feats = _read_i3d(path, spec.source, what)
        setting = None  # the standard file is always (2048, T)
    else:
        feats = read_matrix(path, spec.orientation, what)
        setting = "the stream's orientation"
    check_features(feats, path, what, spec.dim, stored_orientation(spec), setting)
    return feats


def _read_i3d(path: Path, source: FeatureSource, what: str) -> np.ndarray:
    """Rows of the standard (2048, T) file; memory-mapped so only the stream's half is copied."""
    array = _load(path, what, mmap=True)
    if array.ndim != 2 or array.shape[0] != I3D_DIM:
        raise DataError(
            f"{what} file {path} has shape {array.shape}; expected ({I3D_DIM}, T) standard I3D "
            f"features (rows 0..{I3D_HALF - 1} RGB, {I3D_HALF}..{I3D_DIM - 1} FLOW)"
        )
    return np.ascontiguousarray(array[I3D_ROWS[source]], dtype=np.float32)  # (1024, T)


def read_matrix(path: Path, orientation: Orientation, what: str) -> np.ndarray:
    """A 2-D ``.npy`` file stored as ``orientation`` says, as C-contiguous float32 ``(D, T)``.

    Raises:
        DataError: unreadable file, an ``.npz`` archive, a dtype that is not real numbers, or
        an array that is not 2-D (``what`` names the file's role in the message).
    """
    array = _load(path, what, mmap=False)
    if array.ndim != 2:
        raise DataError(
            f"{what} file {path} has shape {array.shape}; expected a 2-D array stored "
            f"{orientation.value}"
        )
    feats = array if orientation is Orientation.DxT else array.T  # (D, T)
    return np.ascontiguousarray(feats, dtype=np.float32)


def check_features(
    feats: np.ndarray,
    path: Path,
    what: str,
    dim: Optional[int],
    orientation: Orientation,
    orientation_setting: Optional[str],
) -> None:
    """DataError unless ``feats`` (D, T) has ``dim`` rows (when given), T >= 1 and finite values.

    Args:
        feats: (D, T) features read from ``path``.
        path, what: the file and its role (e.g. ``rgb features``), for messages.
        dim: the expected D, or None for any.
        orientation: how the file was read, for messages.
        orientation_setting: what the user sets to read the file the other way (named in a
            hint when the file looks transposed); None where it cannot be set.
    """
    if dim is not None and feats.shape[0] != dim:
        hint = ""
        if orientation_setting is not None and feats.shape[1] == dim:
            other = Orientation.TxD if orientation is Orientation.DxT else Orientation.DxT
            hint = f"; the file looks transposed: set {orientation_setting} to {other.value}?"
        raise DataError(
            f"{what} file {path} has dimension {feats.shape[0]} (shape {_shape_as_stored(path)}, "
            f"read as {orientation.value}); expected {dim}{hint}"
        )
    if feats.shape[1] == 0:
        raise DataError(f"{what} file {path} has 0 frames (shape {feats.shape}); expected T >= 1")
    check_finite(feats, path)


def _load(path: Path, what: str, mmap: bool) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        if "Object arrays" in str(err):  # never pass on numpy's advice to unpickle the file
            raise DataError(
                f"{what} file {path} holds Python objects (an object array), which are never "
                "unpickled; expected a .npy array of numbers"
            ) from None
        if "allow_pickle" in str(err):  # no .npy header: numpy takes the file for a pickle
            raise DataError(
                f"cannot read {what} file {path}: it is not a .npy file (no .npy header; "
                "files are never unpickled); expected a .npy array"
            ) from None
        raise DataError(f"cannot read {what} file {path}: {err}; expected a .npy array") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise DataError(f"{what} file {path} is an .npz archive; expected a single .npy array")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{what} file {path} has dtype {array.dtype}; expected real numbers")
    return array


def check_finite(feats: np.ndarray, path: str | Path) -> None:
    """DataError naming the first non-finite value of ``feats`` (D, T): its frame and dim."""
    finite = np.isfinite(feats)
    if finite.all():
        return
    dims, frames = np.nonzero(~finite)
    order = np.lexsort((dims, frames))  # first by frame, then dim
    d, t = int(dims[order[0]]), int(frames[order[0]])
    raise DataError(
        f"features file {path} has {dims.size} non-finite value(s); first: {feats[d, t]} at frame "
        f"{t}, dim {d}; expected finite numbers"
    )


def align_to_labels(
    feats: np.ndarray,
    num_frames: int,
    tolerance: int,
    video: str,
    stream: str,
    path: Optional[str | Path] = None,
    reference: str = "the labels",
) -> np.ndarray:
    """Make a stream exactly ``num_frames`` long.

    A stream within ``tolerance`` frames of the labels is padded (last frame repeated) or
    trimmed (frames dropped at the end), with a warning; a larger difference is an error.

    Args:
        feats: (D, T) features.
        num_frames: the label length.
        tolerance: the most frames T may differ from ``num_frames`` (``dataset.length_tolerance``).
        video, stream: for messages.
        path: the feature file, for messages.
        reference: what ``num_frames`` is the length of, for messages (``the labels``, or
            ``the rgb features`` when there are no labels).

    Returns:
        (D, num_frames) float32.

    Raises:
        DataError: ``|T - num_frames| > tolerance``.
    """
    length = feats.shape[1]
    if length == num_frames:
        return feats
    where = f"{stream} features of video {video!r}" + (f" ({path})" if path is not None else "")
    if abs(length - num_frames) > tolerance:
        raise DataError(
            f"{where} have {length} frames but {reference} have {num_frames}; expected a "
            f"difference of at most dataset.length_tolerance={tolerance} frames"
        )
    action = "padding (repeating the last frame)" if length < num_frames else "trimming the end"
    logger.warning(
        "%s have %d frames but %s have %d; %s", where, length, reference, num_frames, action
    )
    if length > num_frames:
        return np.ascontiguousarray(feats[:, :num_frames])
    pad = np.repeat(feats[:, -1:], num_frames - length, axis=1)  # (D, num_frames - T)
    return np.concatenate([feats, pad], axis=1)


def stored_orientation(spec: StreamDataConfig) -> Orientation:
    """How a stream's files are stored: DxT for the standard I3D file, else ``orientation``."""
    return Orientation.DxT if spec.source in I3D_ROWS else spec.orientation


def _describe(spec: StreamDataConfig) -> str:
    if spec.source in I3D_ROWS:
        rows = I3D_ROWS[spec.source]
        return f"source {spec.source.value}: rows {rows.start}..{rows.stop - 1} of ({I3D_DIM}, T)"
    return f"source folder {spec.folder!r}, stored {spec.orientation.value}"


def _shape_as_stored(path: Path) -> tuple[int, ...]:
    return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
