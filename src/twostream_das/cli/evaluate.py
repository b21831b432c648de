"""``twostream-das evaluate``: score a run's selected checkpoint on its fold's test videos."""

from __future__ import annotations

import argparse
import json

from ..distributed import launched_rank
from ..workflows.evaluation import evaluate_run, results_table
from ..workflows.selection import format_weights
from ._common import add_quiet, add_rank_threads, add_sampling, sampling_options


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="score a trained run on its test videos",
        description="Score RUN_DIR's checkpoint on the fold's test videos (each stream "
        "alone, e.g. RGB only and FLOW only, and fused); writes RUN_DIR/results.json and "
        "RUN_DIR/predictions/<video>.txt.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="validation-selected (best, default) or final (last) weights",
    )
    parser.add_argument("--json", action="store_true", help="print results.json instead of a table")
    add_sampling(parser)
    add_rank_threads(parser)
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = evaluate_run(
        args.run_dir, args.checkpoint, quiet=args.quiet, threads=args.threads,
        **sampling_options(args),
    )
    if launched_rank() != 0:  # under torchrun: rank 0 prints the job's results
        return 0
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"fold {results['fold']}, epoch {results['epoch']}, {results['num_videos']} test "
            f"videos, fusion {format_weights(results['fusion_weights'])}"
        )
        print(results_table(results))
    return 0
