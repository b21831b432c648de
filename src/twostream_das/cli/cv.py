"""``twostream-das cv``: every fold and seed, then mean ± std tables."""

from __future__ import annotations

import argparse

from ..cv import markdown_table, run_cv
from ._common import add_config_args, add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "cv",
        help="cross-validate over folds and seeds",
        description="Train and evaluate OUT/fold<k>_seed<s> for every fold and seed (resumable), "
        "then write OUT/summary.{md,csv,json} with per-run rows and mean ± std.",
    )
    add_config_args(parser)
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--folds", default="all", help="all (default) or a list such as 1,2")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], metavar="S", help="training seeds (default 0)"
    )
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    summary = run_cv(args.config, args.overrides, args.out, args.folds, args.seeds, args.quiet)
    print(markdown_table(summary), end="")
    return 0
