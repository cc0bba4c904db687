"""docs/parity.md cannot drift from the tests: every row's figure is in the test it names.

The table is parsed; for each row the named test function is found with ``ast`` in its file
and its source must contain the row's figure verbatim (whitespace normalised). A renamed or
deleted test, or a changed tolerance, fails here until the table says the same.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "parity.md"
SUITES = ("semeval", "genmu", "evallearn", "tofu", "muse", "wmdp", "mufac", "mucac", "unlearncanvas", "rwku")
COLUMNS = ["suite", "reference (version)", "compared how (data, model)", "figure", "residual difference", "measured by"]


def rows(doc: Path = DOC) -> list[dict[str, str]]:
    lines = [line for line in doc.read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    out = []
    for line in lines[2:]:
        # Split on the column bars only: a cell never holds "|" (the table would break on GitHub too).
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == len(COLUMNS), line
        out.append(dict(zip(COLUMNS, cells)))
    return out


def _source_of(path: Path, name: str) -> str | None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(path.read_text(), node)
    return None


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_every_suite_has_a_row():
    assert {r["suite"] for r in rows()} == set(SUITES)


@pytest.mark.parametrize("row", rows(), ids=lambda r: f"{r['suite']}-{r['measured by'].split('::')[-1].strip('`')}")
def test_the_figure_is_what_the_named_test_asserts(row):
    check_row(row)


def check_row(row: dict[str, str]) -> None:
    ref = re.fullmatch(r"`(tests/[\w/]+\.py)::(\w+)`", row["measured by"])
    assert ref, f"'measured by' must be `tests/FILE.py::test_name`, got {row['measured by']!r}"
    path, name = ROOT / ref.group(1), ref.group(2)
    assert path.is_file(), f"{ref.group(1)} does not exist"
    source = _source_of(path, name)
    assert source is not None, f"{ref.group(1)} has no test {name}"
    figure = row["figure"]
    if figure == "—":
        return
    match = re.fullmatch(r"`([^`]+)`", figure)
    assert match, f"figure must be `...` or —, got {figure!r}"
    assert _squash(match.group(1)) in _squash(source), f"{name} no longer asserts {match.group(1)}"


def test_a_changed_figure_is_caught(tmp_path):
    # The check can fail: the same table with one tolerance tightened no longer matches its test.
    changed = tmp_path / "parity.md"
    changed.write_text(DOC.read_text().replace("| `rel=1e-12` |", "| `rel=1e-15` |", 1))
    bad = [r for r in rows(changed) if r["figure"] == "`rel=1e-15`"]
    assert len(bad) == 1
    with pytest.raises(AssertionError, match="no longer asserts rel=1e-15"):
        check_row(bad[0])
    renamed = dict(bad[0], **{"measured by": "`tests/suites/tofu/test_metrics.py::test_gone`"})
    with pytest.raises(AssertionError, match="has no test test_gone"):
        check_row(renamed)
