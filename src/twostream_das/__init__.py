"""twostream_das: 2s-DAS, two-stream diffusion for temporal action segmentation.

The Python API (:mod:`twostream_das.api`, imported on first use so that ``import twostream_das``
stays light; a walk-through in ``docs/API.md``): :func:`train` and :func:`evaluate` a run,
:func:`load_model` rebuilds a checkpoint's model, :func:`predict` segments one video and returns
a :class:`Prediction` (labels, per-frame probabilities and uncertainty, :class:`Segment` list,
``to_records()``, ``write(folder)``), :func:`predict_many` many (batched), :func:`predict_video`
a video file; :func:`score` is the MS-TCN scorer (Acc, Edit, F1@{10,25,50}).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from .api import (
        LoadedModel,
        Prediction,
        Segment,
        evaluate,
        load_config,
        load_model,
        predict,
        predict_many,
        predict_video,
        score,
        train,
        write_predictions,
    )

__all__ = [
    "LoadedModel", "Prediction", "Segment", "__version__", "evaluate", "load_config",
    "load_model", "predict", "predict_many", "predict_video", "score", "train",
    "write_predictions",
]  # fmt: skip
_API = tuple(name for name in __all__ if name != "__version__")


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
