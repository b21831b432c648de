"""Arguments shared by several commands."""

from __future__ import annotations

import argparse


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        required=True,
        metavar="FILE_OR_PRESET",
        help="a YAML file or a preset name: gtea, 50salads, breakfast, demo",
    )
    add_overrides(
        parser,
        "override config keys, e.g. --set dataset.root=/data/gtea train.epochs=100 "
        "(repeatable; unknown keys are errors)",
    )


def add_overrides(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE ...`` (repeatable) into ``args.overrides``, a list of strings."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
