"""Atomic file writes: written to a temporary file in the target's folder, flushed and fsynced,
then moved over the target with ``os.replace`` (a file that must be new is hard-linked instead,
which never replaces one; the folder is fsynced too). A reader sees the old file or the new one,
never a partial one; a failure leaves no temporary file behind (a full disk is a
:class:`~twostream_das.errors.DiskFullError` naming the file). The file gets the mode a plain
``open(path, "w")`` would give it (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.

Checkpoints, run folders, prediction files, configs and split files are all written with these;
the module imports only :mod:`twostream_das.errors`, so any layer above may use it.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import ArrayLike

from .errors import DiskFullError

TMP_SUFFIX = ".tmp"
"""Suffix of the hidden temporary file (``.<name>.<random>.tmp``) an atomic write renames."""


def atomic_write(
    path: str | Path,
    write: Callable[[IO[bytes]], None],
    move: Callable[[str, Path], None] = os.replace,
) -> Path:
    """Run ``write`` on a temporary file beside ``path``, fsync it, then ``os.replace`` it
    (or ``move(tmp, path)``).

    Parent folders are created; the folder is fsynced after the rename where the platform
    allows. On any failure (``write`` included) the temporary file is removed and ``path`` is
    left as it was. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX: mkstemp's 0o600 -> what open() would give
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        move(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if no_space_left(err):
            raise DiskFullError(
                f"no space left on the device to write {path} (it is as it was; the partial "
                "copy is removed)"
            ) from None
        raise
    _fsync_dir(path.parent)
    return path


def no_space_left(err: BaseException) -> bool:
    """Whether ``err``, or an exception it was raised from or while handling (torch's zip writer
    turns the ``OSError`` into a ``RuntimeError``), is a full disk or quota."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFullError) or (
            isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created). Returns ``path``."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, newlines as given (no ``\\r\\n`` translation)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_create(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """:func:`atomic_write` to a *new* file: ``FileExistsError`` (and ``path`` untouched) when it
    exists, also when another process creates it meanwhile (a hard link, not a rename, puts the
    file in place)."""
    return atomic_write(path, write, _link_new)


def atomic_create_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_create` of ``text``, newlines as given."""
    return atomic_create(path, lambda handle: handle.write(text.encode(encoding)))


def _link_new(tmp: str, path: Path) -> None:
    """``tmp`` becomes ``path`` unless ``path`` exists (``os.link`` refuses to replace). Where
    the file system has no hard links, a check then a rename (a small window for a race)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def atomic_save_npy(path: str | Path, array: ArrayLike) -> Path:
    """Save one array in ``.npy`` format to exactly ``path`` (no suffix added), atomically.

    Object arrays are refused (``allow_pickle=False``), so the file loads with ``numpy.load``
    defaults.
    """
    arr = np.asarray(array)
    return atomic_write(path, lambda handle: np.save(handle, arr, allow_pickle=False))
