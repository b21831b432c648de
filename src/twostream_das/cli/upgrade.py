"""``twostream-das upgrade``: a config file, checkpoint or run folder of an older version in
today's format."""

from __future__ import annotations

import argparse

from ..tools.upgrade import UPGRADED_SUFFIX, upgrade_file
from ._common import add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "upgrade",
        help="write a config file, checkpoint or run folder of an older version in today's "
        "format",
        description="Read FILE, a config file (YAML), a checkpoint (.pt) or a training run "
        "folder written by an older twostream_das, and write it in today's format to a new "
        "file or folder: config layout 1 (dataset.rgb / dataset.flow, fusion.rgb_weight / "
        "fusion.flow_weight) as named streams, eval.cpu_bf16 as eval.precision, "
        "model.diffusion.num_inference_steps as eval.steps, checkpoint version 1 as today's. "
        "A run folder is written whole: its config.yaml, run.json and checkpoints upgraded, "
        "its other files (split, metrics, selection, results, predictions, logs) copied as "
        "they are; train, evaluate and predict then take the new folder. The other commands "
        "read today's formats only and name this command when given an older file or run "
        "folder. FILE itself is never changed, and an existing target is never replaced.",
    )
    parser.add_argument(
        "file", metavar="FILE", help="config file, checkpoint or run folder to upgrade"
    )
    parser.add_argument(
        "--out", metavar="NEW_FILE", default=None,
        help=f"where to write it (default: FILE's name with {UPGRADED_SUFFIX} before the "
        "extension, beside it, e.g. best.pt -> best.upgraded.pt, RUN -> RUN.upgraded); must "
        "not exist (a run folder's may be an empty folder)",
    )
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    done = upgrade_file(args.file, args.out)
    if done.target is None:
        print(f"{done.source} is in today's format already; nothing written")
        return 0
    if not done.source.is_dir():
        print(f"wrote {done.target}: " + "; ".join(done.changes))
        return 0
    print(f"wrote run folder {done.target}, upgraded from {done.source}:")
    for line in done.changes:
        print(f"  {line}")
    print(f"  {len(done.copied)} other files copied as they are")
    return 0
