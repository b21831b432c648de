"""Command line: ``twostream-das <command>``. A thin layer over the library.

Each command lives in its own module of this package with a ``register(subparsers)``
function that adds its parser and sets ``func`` to a callable ``(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__
from ..errors import TwoStreamDASError

# Modules of this package that define commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "train", "evaluate", "predict", "cv", "demo", "make_demo", "score", "extract", "report"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twostream-das",
        description="2s-DAS: two-stream diffusion for temporal action segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False)
    level = logging.DEBUG if args.verbose else (logging.WARNING if quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except TwoStreamDASError as err:
        print(f"twostream-das {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"twostream-das {args.command}: interrupted", file=sys.stderr)
        return 130
