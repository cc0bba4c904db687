"""What a CI system reads after a gate: a one-line result for any CI log, and on GitHub Actions
the check table as Markdown in the job summary (``$GITHUB_STEP_SUMMARY``). Pure Python: works
on the scorecard dictionary, knows nothing of pytest."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_unlearn.scorecard import format_number, threshold_text

#: GitHub Actions sets this to a file each step appends Markdown to; it becomes the run's page.
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def verdict(check: Mapping[str, Any]) -> str:
    if check.get("error"):
        return "ERROR"
    return "PASS" if check.get("passed") else "FAIL"


def failed_checks(card: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in card.get("checks", []) if not c.get("passed")]


def run_verdict(card: Mapping[str, Any]) -> str:
    """PASS only for a complete run whose every check passed; INCOMPLETE for a run that stopped
    (Ctrl-C) or a selection that left checks out, whatever the checks that ran say."""
    if card.get("status") == "running":
        return "INTERRUPTED"
    if failed_checks(card):
        return "FAIL"
    return "PASS" if card.get("passed") else "INCOMPLETE"


def one_line(card: Mapping[str, Any], scorecard: Path | str, report: Path | str | None = None) -> str:
    """``unlearn: FAIL semeval 1.0 — 3 of 16 checks failed (scorecard: gate/scorecard.json)``:
    one line a CI log, a chat bot or a grep can read without parsing JSON."""
    suite = card.get("suite", {})
    checks = card.get("checks", [])
    failed = len(failed_checks(card))
    counts = f"{failed} of {len(checks)} checks failed"
    missing = card.get("missing_checks") or []
    if missing:
        counts += f", {len(missing)} not run"
    where = f"scorecard: {scorecard}" + (f", report: {report}" if report else "")
    return f"unlearn: {run_verdict(card)} {suite.get('name', '?')} {suite.get('version', '?')} — {counts} ({where})"


def _cell(text: str) -> str:
    """A Markdown table cell: a ``|`` would end the cell, a newline the row."""
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(card: Mapping[str, Any], scorecard: Path | str, report: Path | str | None = None) -> str:
    """The check table as GitHub-flavoured Markdown, failing checks first, with the result line."""
    suite = card.get("suite", {})
    checks = list(card.get("checks", []))
    # Failing checks first (stable: manifest order within each group), as in the HTML report.
    checks.sort(key=lambda c: bool(c.get("passed")))
    lines = [
        f"### unlearn: {suite.get('name', '?')} {suite.get('version', '?')} — {run_verdict(card)}",
        "",
        one_line(card, scorecard, report).replace("|", "\\|"),
        "",
        "| check | value | threshold | 95% CI | n | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in checks:
        ci = c.get("ci95")
        value = format_number(c.get("value"))
        if c.get("error"):
            value += f" ({c['error']})"
        row = [
            c.get("id", "?"),
            value,
            threshold_text(c.get("op", ""), c.get("threshold", float("nan")), c.get("unit") or ""),
            f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "",
            "" if c.get("n") is None else str(c["n"]),
            f"**{verdict(c)}**" if verdict(c) != "PASS" else "PASS",
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
    for check_id in card.get("missing_checks") or []:
        lines.append(f"| {_cell(check_id)} |  |  |  |  | not run |")
    for warning in card.get("warnings", []):
        lines.append("")
        lines.append(f"> warning: {_cell(warning)}")
    return "\n".join(lines) + "\n\n"


def write_step_summary(
    card: Mapping[str, Any], scorecard: Path | str, report: Path | str | None, environ: Mapping[str, str]
) -> str | None:
    """Append the table to ``$GITHUB_STEP_SUMMARY`` when it is set (other steps wrote there
    too: never truncate). Returns a one-line warning when the file cannot be written."""
    target = environ.get(STEP_SUMMARY_ENV)
    if not target:
        return None
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(markdown(card, scorecard, report))
    except OSError as exc:
        why = exc.strerror or exc
        return f"{STEP_SUMMARY_ENV}={target}: cannot append the check table ({why}); the scorecard has it"
    return None
