"""Optional dependencies of feature extraction (the ``video`` extra), imported on first use.

``import twostream_das.extraction`` must work on a base install (the CLI imports it to register
``extract``), so OpenCV and PyAV are only imported when a video is actually decoded or a flow
computed. A missing package becomes one clear error, never a traceback.
"""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from importlib import metadata
from types import ModuleType

from ..errors import TwoStreamDASError

# The video extra as pyproject.toml states it, should the installed metadata be unreadable.
_VIDEO_FALLBACK = ("av>=12,<19", "opencv-contrib-python-headless>=4.8,<6")


def install_line() -> str:
    """The one pip line that adds the ``video`` extra's packages to the running interpreter.

    The packages are named, not ``twostream_das[video]``: in a checkout installed with
    ``pip install -e .`` the latter would fetch another copy of this package.
    """
    try:
        wanted = [re.sub(r"\s*;.*", "", r) for r in metadata.requires("twostream_das") or ()
                  if re.search(r"extra\s*==\s*['\"]video['\"]", r)]  # fmt: skip
    except metadata.PackageNotFoundError:
        wanted = []
    packages = " ".join(shlex.quote(p.replace(" ", "")) for p in wanted or _VIDEO_FALLBACK)
    return f"{shlex.quote(sys.executable)} -m pip install {packages}"


def _install_hint() -> str:
    return (f"install the video extra with: {install_line()} "
            f"(in a checkout: bash scripts/setup.sh extract)")


class OptionalDependencyError(TwoStreamDASError, ImportError):
    """A package of an optional extra is needed but not installed."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`OptionalDependencyError` naming ``purpose``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise OptionalDependencyError(
            f"{purpose} needs the Python package {module!r}, which is not importable ({err}); "
            f"{_install_hint()}"
        ) from None


def require_cv2() -> ModuleType:
    return require("cv2", "resizing frames and optical flow")


def require_cv2_contrib() -> ModuleType:
    cv2 = require_cv2()
    if not hasattr(cv2, "optflow"):
        raise OptionalDependencyError(
            "TV-L1 optical flow needs OpenCV's contrib modules (cv2.optflow), but the installed "
            "OpenCV lacks them; uninstall opencv-python(-headless) and "
            f"{_install_hint()}"
        )
    return cv2


def require_av() -> ModuleType:
    return require("av", "decoding video files")


def require_video_packages() -> None:
    """PyAV and OpenCV, checked before any other work of ``extract`` (both are always needed:
    decoding, resizing), so a base install hears the pip line first."""
    require_av()
    require_cv2()
