"""twostream_das: 2s-DAS, two-stream diffusion for temporal action segmentation.

The Python API (:mod:`twostream_das.api`, imported on first use so that ``import twostream_das``
stays light): :func:`load_model` rebuilds a checkpoint's model, :func:`predict` segments one
video and returns a :class:`Prediction` (labels, per-frame probabilities, :class:`Segment` list).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from .api import Prediction, Segment, load_model, predict

__all__ = ["Prediction", "Segment", "__version__", "load_model", "predict"]
_API = ("Prediction", "Segment", "load_model", "predict")


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
