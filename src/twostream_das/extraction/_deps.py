"""Optional dependencies of feature extraction (the ``video`` extra), imported on first use.

``import twostream_das.extraction`` must work on a base install (the CLI imports it to register
``extract``), so OpenCV and PyAV are only imported when a video is actually decoded or a flow
computed. A missing package becomes one clear error, never a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import TwoStreamDASError

_INSTALL_HINT = 'install the video extra: pip install "twostream_das[video]"'


class OptionalDependencyError(TwoStreamDASError, ImportError):
    """A package of an optional extra is needed but not installed."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`OptionalDependencyError` naming ``purpose``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OptionalDependencyError(
            f"{purpose} needs the Python package {module!r}, which is not importable ({err}); "
            f"{_INSTALL_HINT}"
        ) from None


def require_cv2() -> ModuleType:
    return require("cv2", "resizing frames and optical flow")


def require_cv2_contrib() -> ModuleType:
    cv2 = require_cv2()
    if not hasattr(cv2, "optflow"):
        raise OptionalDependencyError(
            "TV-L1 optical flow needs OpenCV's contrib modules (cv2.optflow), but the installed "
            "OpenCV lacks them; uninstall opencv-python(-headless) and "
            f"{_INSTALL_HINT} (it brings opencv-contrib-python-headless)"
        )
    return cv2


def require_av() -> ModuleType:
    return require("av", "decoding video files")
