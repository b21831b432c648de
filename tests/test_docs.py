"""Code quoted in the docs is the code."""

import ast
import inspect
import re
import textwrap
from pathlib import Path

from twostream_das.model.block import block_forward

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


ROOT = DOCS.parent
SHIPPED_TEXT = [ROOT / "README.md", *sorted((ROOT / "src").rglob("*.py")),
                *sorted((ROOT / "src").rglob("*.yaml")), *sorted(DOCS.rglob("*.md"))]  # fmt: skip
SECTION_REF = re.compile(r"\b([A-Za-z_]+\.md)\s+sections?\s+(\d+)(?:\s+and\s+(\d+))?")


def test_every_section_reference_names_a_heading_of_a_shipped_file():
    refs = 0
    for path in SHIPPED_TEXT:
        for match in SECTION_REF.finditer(path.read_text(encoding="utf-8")):
            name, *numbers = match.groups()
            target = next((p for p in (DOCS / name, ROOT / name) if p.is_file()), None)
            assert target is not None, f"{path}: {match.group(0)} names a file that does not ship"
            headings = re.findall(r"^#+ (\d+)\. ", target.read_text(encoding="utf-8"), re.M)
            for number in filter(None, numbers):
                assert number in headings, f"{path}: {match.group(0)}: no heading {number}."
                refs += 1
    assert refs > 20  # the code does cite the method


def test_nothing_refers_to_the_unshipped_spec():
    for path in SHIPPED_TEXT:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?<!TORCH_)\bSPEC\b", text), path
        assert "../shared" not in text, path


INTERNAL = re.compile(r"\b[Ii]ssues? \d+\b|/work/")  # a tracker's numbers, a team machine's paths
READ_BY_USERS = [*SHIPPED_TEXT, ROOT / "CHANGELOG.md", *sorted((ROOT / "bench").glob("*.*")),
                 *sorted((ROOT / "scripts").glob("*.*"))]  # fmt: skip


def test_nothing_names_an_internal_issue_or_path():
    """Readers know neither the team's issue tracker nor its machines: say what is meant."""
    for path in READ_BY_USERS:
        match = INTERNAL.search(path.read_text(encoding="utf-8"))
        assert match is None, f"{path}: {match.group(0)!r}"
