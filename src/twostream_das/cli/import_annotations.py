"""``twostream-das import-annotations ANNOTATIONS --dataset DIR``: segment tables in, the
MS-TCN ``groundTruth/`` and ``mapping.txt`` out."""

from __future__ import annotations

import argparse
import shlex

from ..config import Orientation


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import-annotations",
        help="segment annotations (CSV/TSV: start, end, label) -> groundTruth/ and mapping.txt",
        description="Read segment annotations (a CSV/TSV file with a video column, or a folder "
        "of one file per video; columns start, end, label as exported by ELAN, CVAT, Label "
        "Studio, BORIS or a spreadsheet; seconds, h:mm:ss.ms or frame numbers) and write "
        "DIR/groundTruth/<video>.txt at the features' rate (from DIR/video_info/, written by "
        "extract, or --fps), with a background class for frames no segment covers, and "
        "DIR/mapping.txt. Then: twostream-das init-config DIR (it makes the folds).",
    )
    parser.add_argument("annotations", metavar="FILE_OR_DIR")
    parser.add_argument("--dataset", required=True, metavar="DIR",
                        help="the dataset folder holding the features (extract --out)")
    parser.add_argument("--fps", type=float, default=None,
                        help="the features' frames per second where video_info/ does not say")
    parser.add_argument("--units", choices=("auto", "seconds", "frames"), default="auto",
                        help="start/end in seconds or frame numbers of the video (default auto: "
                        "frames when the start column's name says frame)")
    parser.add_argument("--inclusive-end", action="store_true",
                        help="end frame numbers are the segment's last frame (CVAT's stop frame)")
    parser.add_argument("--background", default="background", metavar="NAME",
                        help="class of the frames no segment covers (default background)")
    parser.add_argument("--columns", default=None, metavar="START,END,LABEL[,VIDEO]",
                        help="header names of the columns, when they are not recognised")
    parser.add_argument("--orientation", choices=[o.value for o in Orientation],
                        default=Orientation.DxT.value,
                        help="axis order of feature files read for their length when "
                        "video_info/ does not say (default DxT)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing groundTruth/ files of the annotated videos")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..tools.annotations import import_annotations, parse_columns

    columns = parse_columns(args.columns) if args.columns else None
    summary = import_annotations(
        args.annotations, args.dataset, fps=args.fps, units=args.units,
        background=args.background, columns=columns, inclusive_end=args.inclusive_end,
        orientation=args.orientation, overwrite=args.overwrite,
    )
    print(f"wrote ground truth of {len(summary.videos)} video(s) ({summary.frames} frames, "
          f"{len(summary.classes)} classes) to {args.dataset}; next: twostream-das init-config "
          f"{shlex.quote(str(args.dataset))} [--group REGEX]")
    return 0
