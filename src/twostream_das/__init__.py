"""twostream_das: 2s-DAS, two-stream diffusion for temporal action segmentation."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
