"""``twostream-das demo``: generate data, train, select, evaluate, predict and plot."""

from __future__ import annotations

import argparse

from ..workflows.demo import DEFAULT_DEMO_DIR, DEMO_DATA_SEED, run_demo
from ..workflows.selection import format_weights
from ._common import add_overrides, add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="the whole pipeline on a generated dataset (a few minutes on a CPU)",
        description="Generate the demo dataset, train fold 1 with the demo preset, select on "
        "validation, evaluate on test, predict and plot one video, write report.html, and "
        "print RGB-only, FLOW-only and fused results. Rerunning into the same folder resumes; "
        "another existing folder is refused.",
    )
    parser.add_argument(
        "--out",
        default=str(DEFAULT_DEMO_DIR),
        metavar="DIR",
        help=f"demo folder (default ./{DEFAULT_DEMO_DIR})",
    )
    parser.add_argument(
        "--data-seed",
        type=int,
        default=DEMO_DATA_SEED,
        metavar="N",
        help=f"seed of the generated dataset (default {DEMO_DATA_SEED}; --set train.seed=N "
        "seeds training)",
    )
    add_overrides(parser, "override demo preset keys, e.g. --set train.epochs=5")
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = run_demo(
        args.out, quiet=args.quiet, overrides=args.overrides, data_seed=args.data_seed
    )
    print(
        f"demo: fold 1 test videos, epoch {result.results['epoch']} selected on validation, "
        f"fusion weights {format_weights(result.results['fusion_weights'])}"
    )
    print(result.table)
    wins = [k for k, v in result.fusion_gain.items() if v > 0]
    gains = ", ".join(f"{k} {v:+.1f}" for k, v in result.fusion_gain.items())
    print(f"fused vs the better single stream: {gains} (fusion ahead on {len(wins)} of 5)")
    print(f"results: {result.out / 'results.json'}   barcode: {result.plot}")
    print(f"report: {result.report}")
    return 0
