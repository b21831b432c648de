"""``twostream-das predict``: segment videos given their RGB and FLOW features (or raw video)."""

from __future__ import annotations

import argparse

from ..config import Orientation, Precision
from ..errors import ConfigError
from ..extraction import ExtractionSettings, FlowMethod
from ..prediction import predict_files, predict_videos
from ._common import add_quiet, add_sampling, add_weight_args, weight_options


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "predict",
        help="predict segments from feature files (or videos) with a trained checkpoint",
        description="For each video (RGB and FLOW .npy files with the same name, or a raw video "
        "with --video) write the MS-TCN prediction, segments (CSV, JSON), fused probabilities "
        "(C, T) and a barcode PNG.",
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT", help="e.g. RUN_DIR/checkpoints/best.pt"
    )
    parser.add_argument("--rgb", metavar="PATH", help=".npy file or folder of them")
    parser.add_argument("--flow", metavar="PATH", help=".npy file or folder of them")
    parser.add_argument(
        "--video",
        metavar="FILE_OR_DIR",
        help="raw video(s) instead of --rgb/--flow: features are extracted first (needs the "
        "'video' extra and local network weights)",
    )
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument(
        "--fps", type=float, default=None,
        help="frame rate for seconds, > 0 (default: dataset.fps)"
    )
    parser.add_argument(
        "--labels",
        default=None,
        metavar="DIR",
        help="groundTruth folder (<video>.txt): adds a GT row and metrics",
    )
    for stream in ("rgb", "flow"):
        parser.add_argument(
            f"--{stream}-orientation",
            choices=[o.value for o in Orientation],
            default=None,
            help=f"axis order of the {stream.upper()} files (default: the checkpoint's config)",
        )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    extraction = parser.add_argument_group("feature extraction (with --video)")
    add_weight_args(extraction)
    extraction.add_argument(
        "--flow-method",
        choices=[m.value for m in FlowMethod],
        default=FlowMethod.TVL1.value,
        help="tvl1 (the reference, slow on CPU) or farneback (default tvl1)",
    )
    parser.add_argument(
        "--precision",
        choices=[p.value for p in Precision],
        default=None,
        help="inference precision (eval.precision; default: the checkpoint's, fp32 unless set): "
        "bf16 is faster for large models on CPUs with bf16, probabilities at bf16 precision",
    )
    parser.add_argument(
        "--cpu-bf16",
        dest="precision",
        action="store_const",
        const=Precision.BF16.value,
        help="the older name of --precision bf16",
    )
    add_sampling(parser)
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    common = dict(
        fps=args.fps,
        labels_dir=args.labels,
        quiet=args.quiet,
        device=args.device,
        precision=args.precision,
        steps=args.steps,
        samples=args.samples,
    )
    if args.video is not None:
        if args.rgb or args.flow:
            raise ConfigError("give either --video or --rgb and --flow, not both")
        weights, names = weight_options(args)
        settings = ExtractionSettings(flow_method=FlowMethod(args.flow_method), device=args.device)
        summary = predict_videos(
            args.checkpoint, args.video, args.out, weights, settings, weight_names=names, **common
        )
    else:
        if not (args.rgb and args.flow):
            raise ConfigError("predict needs --rgb and --flow feature paths (or --video)")
        orientations = {
            s: Orientation(v) if (v := getattr(args, f"{s}_orientation")) else None
            for s in ("rgb", "flow")
        }
        summary = predict_files(
            args.checkpoint, args.rgb, args.flow, args.out, orientations=orientations, **common
        )
    print(f"wrote predictions for {len(summary['videos'])} video(s) to {args.out}")
    return 0
