"""``twostream-das init-config DATASET_DIR --fps FPS``: a commented config for your own data."""

from __future__ import annotations

import argparse
import shlex

from ..config import Orientation
from ..errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "init-config",
        help="write a commented config for a dataset folder (classes, folds, streams found)",
        description="Inspect DATASET_DIR (MS-TCN layout: mapping.txt, splits/, groundTruth/, "
        "folders of .npy feature files) and write a config naming its streams, their "
        "dimensions and orientations (detected from the files), the frame rate, the fusion "
        "weights and feature standardisation. Without splits/, folds are made from groundTruth/ "
        "(--folds, --group) and written as splits/*.bundle. An existing file is never "
        "overwritten.",
    )
    parser.add_argument("dataset", metavar="DATASET_DIR")
    parser.add_argument("--fps", type=float, default=None,
                        help="frames per second of the labels and features (default: the rate "
                        "extract --fps recorded in DATASET_DIR/video_info/)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="config file to write, which must not exist (default "
                        "DATASET_DIR/twostream_das.yaml)")
    parser.add_argument("--streams", metavar="[NAME=]FOLDER,...", default=None,
                        help="the streams, in order: feature folders, or i3d_rgb / i3d_flow for a "
                        "half of the standard features/ files; NAME= names one (default: every "
                        "feature folder found, features_X named X; features/ as rgb and flow)")
    parser.add_argument("--orientation", metavar="FOLDER=DxT|TxD", action="append", default=[],
                        help="the axis order of a folder whose files do not show it (repeatable)")
    parser.add_argument("--folds", type=int, default=None, metavar="K",
                        help="without splits/: make K folds (default 4, or the number of groups "
                        "when fewer)")
    parser.add_argument("--group", default=None, metavar="REGEX",
                        help="without splits/: fold by a group read from each video's name, the "
                        "first (...) of REGEX (e.g. 'P(\\d+)' for the subject of P03_cereal), so "
                        "no group is in both the training and the test videos of a fold")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..tools.init_config import init_config, parse_streams  # reads numpy files: only when run

    orientations = {}
    for item in args.orientation:
        folder, _, value = item.partition("=")
        if not folder or value not in {o.value for o in Orientation}:
            raise ConfigError(
                f"--orientation {item!r} is invalid; expected FOLDER=DxT or FOLDER=TxD"
            )
        orientations[folder] = Orientation(value)
    streams = parse_streams(args.streams) if args.streams is not None else None
    path = init_config(args.dataset, args.fps, args.out, streams, orientations, args.folds,
                       args.group)
    print(f"wrote {path}; train with: twostream-das train --config {shlex.quote(str(path))} "
          "--fold 1 --out RUN_DIR")
    return 0
