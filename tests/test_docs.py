"""Code quoted in the docs is the code."""

import ast
import inspect
import re
import textwrap
from pathlib import Path

from twostream_das.modules.block import block_forward

DOCS = Path(__file__).resolve().parents[1] / "docs"


def without_docstring(function) -> str:
    """The source of ``function`` with its docstring removed."""
    source = textwrap.dedent(inspect.getsource(function))
    body = ast.parse(source).body[0].body
    lines = source.splitlines(keepends=True)
    doc = body[0]
    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
    return "".join(lines[: doc.lineno - 1] + lines[doc.end_lineno :])


def test_architecture_quotes_the_block_as_it_is():
    text = (DOCS / "ARCHITECTURE.md").read_text()
    first = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # the first thing it shows
    assert first == without_docstring(block_forward)
