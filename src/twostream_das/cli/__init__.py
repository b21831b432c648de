"""Command line: ``twostream-das <command>``. A thin layer over the library.

Shell completion of commands and options (the ``completion`` extra, argcomplete):
``eval "$(register-python-argcomplete twostream-das)"`` in ``~/.bashrc`` (zsh: the same after
``autoload -U bashcompinit && bashcompinit``).

Each command lives in its own module of this package with a ``register(subparsers)``
function that adds its parser and sets ``func`` to a callable ``(args) -> int``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator

from tqdm.auto import tqdm

from .._version import __version__
from ..errors import TwoStreamDASError

# Modules of this package that define commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "train", "evaluate", "predict", "cv", "demo", "make_demo", "score", "extract", "init_config",
    "report", "convert", "upgrade", "import_annotations", "export",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twostream-das",
        description="2s-DAS: two-stream diffusion for temporal action segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbosity(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for command in sub.choices.values():  # -v / --quiet also after the command
        add_verbosity(command, default=argparse.SUPPRESS)
    return parser


def add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v/--verbose`` and ``--quiet``. On a subcommand the default is SUPPRESS, so the value
    given before the command (or False) is kept when the option is not repeated after it."""
    have = parser._option_string_actions  # the options the parser already has
    if "--verbose" not in have:
        parser.add_argument("-v", "--verbose", action="store_true", default=default,
                            help="debug logging")
    if "--quiet" not in have:
        parser.add_argument("--quiet", action="store_true", default=default,
                            help="no progress bars, warnings only")


def complete(parser: argparse.ArgumentParser, **kwargs: object) -> None:
    """Answer the shell's completion request and exit, when the shell asked (argcomplete sets
    ``_ARGCOMPLETE``); nothing otherwise, or without argcomplete installed. ``kwargs`` go to
    ``argcomplete.autocomplete`` (tests pass ``output_stream`` and ``exit_method``)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:  # the optional ``completion`` extra
        return
    argcomplete.autocomplete(parser, **kwargs)  # type: ignore[arg-type]


class TqdmLoggingHandler(logging.Handler):
    """Log lines written through ``tqdm.write``, so they never cut through a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


@contextlib.contextmanager
def configured_logging(verbose: bool, quiet: bool) -> Iterator[None]:
    """One tqdm-aware stderr handler on this package's logger for the command's duration
    (removed afterwards, with the level restored, so ``main`` can run in-process twice)."""
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    package = logging.getLogger(__name__.rpartition(".")[0])
    handler = TqdmLoggingHandler(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    previous = package.level
    package.addHandler(handler)
    package.setLevel(level)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(previous)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    complete(parser)
    args = parser.parse_args(argv)
    with configured_logging(args.verbose, args.quiet):
        try:
            return int(args.func(args))
        except TwoStreamDASError as err:
            print(f"twostream-das {args.command}: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"twostream-das {args.command}: interrupted", file=sys.stderr)
            return 130
