"""Feature files on disk: atomic writes, completeness checks, leftovers of killed runs.

A feature file is written by :func:`twostream_das.io.atomic_save_npy`: to a hidden temporary
file in the same folder, flushed to disk, then renamed over the target (``os.replace`` is atomic
on one file system), so a reader or a resumed run never sees half a file. A run killed between
the two leaves only the hidden temporary file (``.<video>.npy.<random>.tmp``), which no
``*.npy`` glob matches and the next run deletes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..io import TMP_SUFFIX

logger = logging.getLogger(__name__)


def remove_stale_temps(path: Path) -> None:
    """Delete temporary files a killed run left for ``path``."""
    if path.parent.is_dir():
        for leftover in path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"):
            logger.info("removing %s, left by an interrupted run", leftover)
            leftover.unlink(missing_ok=True)


def is_complete(path: Path, dim: int, num_frames: int) -> bool:
    """True when ``path`` holds finite float32 features of shape (dim, num_frames).

    ``num_frames`` 0 means the frame count is unknown (the container does not declare it);
    then any T >= 1 is accepted, relying on the atomic writes for completeness.
    """
    if not path.is_file():
        return False
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        logger.warning("%s is unreadable (%s); extracting it again", path, err)
        return False
    frames = array.shape[1] if array.ndim == 2 else -1
    frames_ok = frames == num_frames if num_frames > 0 else frames >= 1
    if array.ndim != 2 or array.dtype != np.float32 or array.shape[0] != dim or not frames_ok:
        logger.warning("%s has shape %s %s, expected (%d, %s) float32; extracting it again",
                       path, array.shape, array.dtype, dim, num_frames or "T")
        return False
    if not np.isfinite(array).all():
        logger.warning("%s holds NaN or inf; extracting it again", path)
        return False
    return True
