"""``twostream-das extract``: per-frame features from raw video files."""

from __future__ import annotations

import argparse
import datetime

import torch

from ..distributed import process_group, rank_and_world
from ..extraction import (
    ExtractionSettings,
    FeatureExtractor,
    FeatureStream,
    FlowMethod,
    ResizeMode,
    extract_videos,
    parse_streams,
)
from ..extraction._deps import require_video_packages
from ._common import add_quiet, add_weight_args, weight_options

BARRIER_TIMEOUT = datetime.timedelta(days=7)
"""Under torchrun, how long a rank that is done waits for the slowest one before rank 0 writes
the manifest (TV-L1 extraction of a large dataset takes days per rank)."""


def register(sub: argparse._SubParsersAction) -> None:
    defaults = ExtractionSettings()
    parser = sub.add_parser(
        "extract",
        help="extract per-frame I3D RGB/FLOW and ViT features from video files",
        description="Decode each video, compute the requested streams and write "
        "OUT/features_<stream>/<video>.npy (D, T) float32, one column per decoded frame (per "
        "frame at --fps); with "
        "both I3D streams also OUT/features/<video>.npy (2048, T), RGB rows first. Complete files "
        "are skipped, so an interrupted run resumes. Weights are local files, never downloaded. "
        "Under torchrun every rank takes its share of the videos (balanced by frame count); "
        "OUT/manifest.json lists what exists once all are done.",
    )
    parser.add_argument("videos", metavar="VIDEO_OR_DIR", help="a video file or a folder of them")
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    parser.add_argument(
        "--streams", default="i3d_rgb,i3d_flow", metavar="LIST",
        help="comma-separated: i3d_rgb (1024-d), i3d_flow (1024-d), clip_rgb (768-d ViT-B/16, "
        "Br-Prompt style); default i3d_rgb,i3d_flow",
    )
    add_weight_args(parser)
    parser.add_argument("--flow-method", choices=[m.value for m in FlowMethod],
                        default=defaults.flow_method.value,
                        help="tvl1: the reference, slow on CPU; farneback: much faster, a "
                        "deviation from the I3D recipe (default tvl1)")
    parser.add_argument("--fps", type=float, default=None, metavar="RATE",
                        help="resample each video to RATE frames per second by its timestamps "
                        "before flow and features (use the rate the model is trained at: 15 for "
                        "GTEA/Breakfast models, 30 for 50Salads); default: every decoded frame. "
                        "OUT/video_info/<video>.json records the video's own rate and duration")
    parser.add_argument("--device", default=defaults.device,
                        help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, metavar="N",
                        help="I3D windows or ViT frames per forward pass "
                        f"(default {defaults.batch_size})")
    parser.add_argument("--window", type=int, default=defaults.window, metavar="N",
                        help=f"frames per I3D window, odd (default {defaults.window})")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, metavar="PX",
                        help=f"I3D input side (default {defaults.image_size})")
    parser.add_argument("--resize", choices=[m.value for m in ResizeMode],
                        default=defaults.resize.value,
                        help="square: whole frame to PXxPX (METHOD.md section 8, default); "
                        "short-side-crop: Kinetics short side PX*256/224 then centre crop")
    parser.add_argument("--sequential", dest="overlap", action="store_false",
                        help="one pass per stream, one stage after the other, instead of "
                        "decoding, flow and the networks overlapping in threads (same features)")
    parser.add_argument("--queue-size", type=int, default=defaults.queue_size, metavar="N",
                        help="frames a queue between two overlapping stages holds "
                        f"(default {defaults.queue_size})")
    parser.add_argument("--overwrite", action="store_true", help="redo complete files too")
    parser.add_argument("--no-combined", dest="combined", action="store_false",
                        help="do not write the 2048-d features/<video>.npy")
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    streams = parse_streams(args.streams)
    require_video_packages()  # the pip line before anything else
    settings = ExtractionSettings(
        window=args.window, image_size=args.image_size, resize=ResizeMode(args.resize),
        flow_method=FlowMethod(args.flow_method), batch_size=args.batch_size, device=args.device,
        overlap=args.overlap, queue_size=args.queue_size, fps=args.fps,
    )
    weights, names = weight_options(args)
    with process_group(torch.device("cpu"), backend="gloo", timeout=BARRIER_TIMEOUT):
        extractor = FeatureExtractor.from_weights(
            streams, i3d_rgb_weights=weights[FeatureStream.I3D_RGB],
            i3d_flow_weights=weights[FeatureStream.I3D_FLOW],
            clip_weights=weights[FeatureStream.CLIP_RGB], settings=settings, weight_names=names,
        )
        summary = extract_videos(args.videos, args.out, extractor, streams,
                                 overwrite=args.overwrite, combined=args.combined,
                                 progress=not args.quiet)
        rank, world = rank_and_world()
    where = f"rank {rank} of {world}: " if world > 1 else ""
    print(f"{where}extracted {len(summary.extracted)} video(s), skipped "
          f"{len(summary.skipped)} already complete; features in {summary.out_dir}")
    if summary.manifest is not None:
        print(f"manifest of all videos: {summary.manifest}")
    return 0
