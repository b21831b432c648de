"""``twostream-das train``: train both streams on one fold (resumes an unfinished run)."""

from __future__ import annotations

import argparse

from ..config import load_config
from ..workflows.selection import format_weights
from ..workflows.training import train
from ._common import add_config_args, add_print_config, add_quiet, print_config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train the configured streams on one fold, selecting on validation",
        description="Train the configured streams (dataset.streams: RGB and FLOW in the "
        "presets) jointly on a fold's training videos; choose the epoch, fusion weights (and "
        "optionally post-processing) on a validation carve-out. "
        "Rerunning into the same --out resumes from the last checkpoint.",
    )
    add_config_args(parser)
    parser.add_argument("--fold", type=int, default=1, metavar="K", help="split number (default 1)")
    parser.add_argument("--out", default=None, metavar="RUN_DIR", help="run folder (required)")
    add_print_config(parser)
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if print_config(args):
        return 0
    cfg = load_config(args.config, args.overrides)
    result = train(cfg, args.fold, args.out, quiet=args.quiet)
    if result.already_finished:
        print(f"run {result.run.root} is already finished ({result.epochs} epochs); nothing to do")
    elif result.selection is not None:
        sel = result.selection
        print(
            f"trained {result.epochs} epochs into {result.run.root}; selected epoch {sel.epoch}, "
            f"fusion {format_weights(sel.fusion_weights)}, "
            f"post-processing {sel.postprocess.kind.value} {sel.postprocess.window}"
        )
    return 0
