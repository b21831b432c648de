"""``twostream-das make-demo OUT_DIR``: write the synthetic two-stream demo dataset."""

from __future__ import annotations

import argparse

from ..data.demo import DEFAULT_DEMO_ROOT, DEMO_MARKER, NUM_PERFORMERS, make_demo


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "make-demo",
        help="write the synthetic two-stream demo dataset (MS-TCN layout)",
        description="Write a small synthetic dataset in the MS-TCN layout: mapping.txt, "
        "groundTruth/, splits/ for 4 folds, and two feature streams of different dimensions "
        "(features_rgb/, features_flow/, stored DxT) with complementary evidence. The same seed "
        f"gives the same files. The demo preset reads it from {DEFAULT_DEMO_ROOT}.",
    )
    parser.add_argument(
        "out_dir", metavar="OUT_DIR", help="folder to write (new, empty or an earlier demo)"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--force", action="store_true",
        help=f"write into a non-empty folder that holds no {DEMO_MARKER} (files of the demo's "
        "names are overwritten; nothing is deleted)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = make_demo(args.out_dir, seed=args.seed, force=args.force)
    print(f"demo dataset written to {out} ({NUM_PERFORMERS} folds, seed {args.seed}); "
          f"train with: twostream-das train --config demo --set dataset.root={out} --fold 1")
    return 0
