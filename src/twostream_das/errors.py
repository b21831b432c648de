"""Exceptions raised for bad input. Each message names the file, the value and what was expected.

The CLI turns any :class:`TwoStreamDASError` into one line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations


class TwoStreamDASError(Exception):
    """Base class of every user-facing error of this package."""


class ConfigError(TwoStreamDASError, ValueError):
    """A configuration file or override is invalid."""


class DataError(TwoStreamDASError, ValueError):
    """A dataset file (features, labels, mapping, split) is missing or malformed."""


class CheckpointError(TwoStreamDASError, ValueError):
    """A checkpoint or run folder is missing, incompatible or would be overwritten."""


class DiskFullError(TwoStreamDASError, OSError):
    """A file could not be written for lack of space (ENOSPC, EDQUOT); the file was left as it
    was and no partial copy remains."""


class WeightsNotFoundError(TwoStreamDASError, FileNotFoundError):
    """Pretrained weights were asked for but the file is not there (never fetched silently)."""
