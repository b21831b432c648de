"""MkDocs hooks: the pages built from the code and the repository, never copied by hand.

- ``cli-reference.md``: every command's ``--help``, from the parsers of :mod:`twostream_das.cli`;
- ``changelog.md``: the repository's ``CHANGELOG.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def cli_reference() -> str:
    """Markdown: the top-level help, then one section per command with its help."""
    sys.path.insert(0, str(ROOT / "src"))  # this checkout's package, installed or not
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal's width
    from twostream_das.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = [
        "# CLI reference",
        "",
        "Generated from the argparse parsers of `twostream_das.cli` when this site is built, so",
        "it is the `--help` of the installed version. `-v` and `--quiet` work before or after",
        "the command.",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
    ]
    for name, command in commands.choices.items():
        lines += ["", f"## {name}", "", "```text", command.format_help().rstrip(), "```"]
    return "\n".join(lines) + "\n"


def on_files(files, config):  # noqa: ANN001  (MkDocs' hook signature)
    files.append(File.generated(config, "cli-reference.md", content=cli_reference()))
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "changelog.md", content=changelog))
    return files
