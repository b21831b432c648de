"""``twostream-das report``: one self-contained HTML page for a prediction, run or cv folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..tools.report import write_report


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="an HTML page to look at predictions (timelines, segments, video) and scores",
        description="Write one self-contained HTML file (no network, no server) for a prediction "
        "folder (predict --out), a run folder (after evaluate) or a cv folder: per video, the "
        "timelines of the ground truth (when known), each stream, the fusion, the confidence "
        "and the uncertainty (when stored), a legend and the segment table, with a playhead "
        "synchronised to the video when one is given; for runs, the test scores (mean ± std "
        "for cv), the selected fusion weights, per-class F1 and the confusion matrix.",
    )
    parser.add_argument("source", metavar="PRED_OR_RUN_DIR", help="prediction, run or cv folder")
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="the HTML file to write (default SOURCE/report.html); an existing file is only "
        "replaced when it is a report of this command",
    )
    parser.add_argument(
        "--video",
        nargs="+",
        default=[],
        metavar="DIR_OR_FILE",
        help="video files, or folders of them, matched to the predicted videos by file name "
        "(one file and one video pair whatever their names); referenced by a relative path, "
        "not embedded",
    )
    parser.add_argument(
        "--labels",
        metavar="DIR",
        help="a groundTruth folder (default: the one predict --labels or the run's dataset used)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path(args.source) / "report.html"
    path = write_report(args.source, out, args.video, args.labels)
    print(f"report: {path}")
    return 0
