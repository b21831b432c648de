"""``twostream-das predict``: segment videos given their RGB and FLOW features."""

from __future__ import annotations

import argparse

from ..config import Orientation
from ..prediction import predict_files
from ._common import add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "predict",
        help="predict segments from feature files with a trained checkpoint",
        description="For each video (RGB and FLOW .npy files with the same name) write the "
        "MS-TCN prediction, segments (CSV, JSON), fused probabilities (C, T) and a barcode PNG.",
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT", help="e.g. RUN_DIR/checkpoints/best.pt"
    )
    parser.add_argument("--rgb", required=True, metavar="PATH", help=".npy file or folder of them")
    parser.add_argument("--flow", required=True, metavar="PATH", help=".npy file or folder of them")
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument(
        "--fps", type=float, default=None, help="frame rate for seconds (default: data.fps)"
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
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    orientations = {
        s: Orientation(getattr(args, f"{s}_orientation"))
        if getattr(args, f"{s}_orientation")
        else None
        for s in ("rgb", "flow")
    }
    summary = predict_files(
        args.checkpoint,
        args.rgb,
        args.flow,
        args.out,
        fps=args.fps,
        labels_dir=args.labels,
        orientations=orientations,
        quiet=args.quiet,
        device=args.device,
    )
    print(f"wrote predictions for {len(summary['videos'])} video(s) to {args.out}")
    return 0
