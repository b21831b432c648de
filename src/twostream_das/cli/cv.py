"""``twostream-das cv``: every fold and seed, then mean ± std tables."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..workflows.cv import markdown_table, parse_shard, run_cv, summarize_cv
from ._common import add_config_args, add_print_config, add_quiet, print_config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "cv",
        help="cross-validate over folds and seeds",
        description="Train and evaluate OUT/fold<k>_seed<s> for every fold and seed (resumable; "
        "a finished run is never run again), then write OUT/summary.{md,csv,json} with per-run "
        "rows and mean ± std. --jobs N runs N at once on this machine; --shard I/N runs one "
        "share (for a cluster's job array) and --summarize then builds the tables from the run "
        "folders.",
    )
    add_config_args(parser)
    parser.add_argument("--out", default=None, metavar="DIR", help="the cv folder (required)")
    add_print_config(parser)
    parser.add_argument("--folds", default="all", help="all (default) or a list such as 1,2")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], metavar="S", help="training seeds (default 0)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="runs at once, each its own process with its share of the cores; output in "
        "OUT/logs/ (default 1: one after the other, in this process)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="torch/OpenMP threads per run (default: the cores divided by --jobs when --jobs > 1)",
    )
    parser.add_argument(
        "--shard", default=None, metavar="I/N",
        help="run only share I of N (0-based; runs I, I+N, ... of the fold-major list) and "
        "write no summary, e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT",
    )
    parser.add_argument(
        "--summarize", action="store_true",
        help="train nothing: build OUT/summary.{md,csv,json} from the finished run folders "
        "(same --config/--set/--folds/--seeds as the shards)",
    )
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if print_config(args):
        return 0
    if args.summarize:
        if args.shard is not None or args.jobs != 1:
            raise ConfigError("cv --summarize trains nothing; do not combine it with --shard "
                              "or --jobs")
        summary = summarize_cv(args.config, args.overrides, args.out, args.folds, args.seeds)
        print(markdown_table(summary), end="")
        return 0
    shard = parse_shard(args.shard) if args.shard is not None else None
    summary = run_cv(args.config, args.overrides, args.out, args.folds, args.seeds, args.quiet,
                     jobs=args.jobs, shard=shard, threads=args.threads)
    if shard is None:
        print(markdown_table(summary), end="")
    else:
        names = ", ".join(f"fold{r['fold']}_seed{r['seed']}" for r in summary["runs"])
        print(f"cv shard {shard[0]}/{shard[1]}: {names or 'no runs'} done in {args.out}; once "
              "every shard is done, the same command with --summarize instead of --shard writes "
              "the summary")
    return 0
