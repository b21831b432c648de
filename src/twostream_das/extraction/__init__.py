"""Feature extraction from raw video (METHOD.md section 8): optical flow, I3D RGB/FLOW, a
CLIP-style ViT.

``extract_video_features(video, streams, ...)`` returns ``{stream: (D, T) float32}`` in memory;
``FeatureExtractor`` keeps the networks loaded across videos; ``extract_videos`` writes the
dataset layout (``features_<stream>/<video>.npy``) resumably. OpenCV and PyAV (the ``video``
extra) are imported only when a video is decoded or a flow computed.
"""

from .extract import (
    DEFAULT_STREAMS,
    WEIGHTS_ENV,
    ExtractionSettings,
    ExtractionSummary,
    FeatureExtractor,
    FeatureStream,
    VideoFeatures,
    extract_video_features,
    extract_videos,
    parse_streams,
)
from .flow import FlowMethod
from .video import ResizeMode

__all__ = [
    "DEFAULT_STREAMS",
    "WEIGHTS_ENV",
    "ExtractionSettings",
    "ExtractionSummary",
    "FeatureExtractor",
    "FeatureStream",
    "FlowMethod",
    "ResizeMode",
    "VideoFeatures",
    "extract_video_features",
    "extract_videos",
    "parse_streams",
]
