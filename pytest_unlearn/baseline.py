"""Gates against the last release: a previous scorecard as the baseline, and side-by-side tables.

A check regresses when its value is worse than the baseline's by more than the tolerance: by
default the baseline's own 95% interval half-width (its sampling noise), else 0. "Worse" follows
the metric's direction. Pure Python: ``--baseline`` in a run and ``python -m pytest_unlearn
compare`` share these functions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.scorecard import SCHEMA, CheckResult, format_number


@dataclass(frozen=True)
class Baseline:
    """A previous scorecard, read and checked: its checks by id."""

    path: Path
    sha256: str
    card: dict[str, Any]

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        return {check["id"]: check for check in self.card.get("checks", [])}

    def record(self) -> dict[str, Any]:
        """What the new scorecard says about its baseline."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "created": self.card.get("created"),
            "model_fingerprint": (self.card.get("model") or {}).get("fingerprint"),
        }


def read_scorecard(path: Path, flag: str) -> tuple[dict[str, Any], str]:
    """A scorecard file and the sha256 of its bytes; anything else is one line naming ``flag``."""
    from pytest_unlearn.files import input_file_problem

    problem = input_file_problem(Path(path))
    if problem is not None:
        raise UnlearnError(f"{flag} {path}: {problem}")
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UnlearnError(f"{flag} {path}: no such file; pass a scorecard JSON of an earlier run") from None
    except OSError as exc:
        raise UnlearnError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        card = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise UnlearnError(f"{flag} {path}: not JSON; pass a scorecard JSON of an earlier run") from None
    if not isinstance(card, dict) or card.get("schema") != SCHEMA or not isinstance(card.get("checks"), list):
        raise UnlearnError(f"{flag} {path}: not a pytest-unlearn scorecard (schema {SCHEMA})")
    return card, hashlib.sha256(raw).hexdigest()


def load_baseline(path: Path, suite: str, version: str) -> Baseline:
    """The baseline of a run of ``suite`` ``version``; another suite or version is an error."""
    card, digest = read_scorecard(path, "--baseline")
    other = card.get("suite") or {}
    if (other.get("name"), other.get("version")) != (suite, version):
        raise UnlearnError(
            f"--baseline {path}: a scorecard of suite {other.get('name')} {other.get('version')}, this run is "
            f"{suite} {version}; pass a baseline of the same suite and version"
        )
    # A partial card (a subset of the checks) is finished: its checks compare; the others are
    # noted as not in the baseline.
    status = card.get("status")
    if status not in ("complete", "partial"):
        from pytest_unlearn.report import status_text

        # A card left "running" is one whose run was killed: say so, not just its raw status.
        said = f"{status!r}: {status_text(status)}" if status_text(str(status)) != status else repr(status)
        raise UnlearnError(f"--baseline {path}: its status is {said}, not 'complete'; pass a finished run's scorecard")
    from pytest_unlearn import domains

    for number, check in enumerate(card["checks"], start=1):
        where = f"--baseline {path} check {number}"
        domains.validate(domains.BaselineCheck, check, where, "pass an unedited scorecard")
    return Baseline(Path(path), digest, card)


def higher_is_better(check: dict[str, Any]) -> bool:
    known = check.get("higher_is_better")
    return bool(known) if known is not None else check.get("op") in (">=", ">")


def tolerance_of(check: dict[str, Any], explicit: float | None) -> float:
    """``explicit``, else the check's 95% interval half-width, else 0."""
    if explicit is not None:
        return explicit
    ci = check.get("ci95")
    return (float(ci[1]) - float(ci[0])) / 2 if ci else 0.0


def regression(new: dict[str, Any], old: dict[str, Any], tolerance: float | None) -> tuple[float, float, bool] | None:
    """(delta, tolerance, regressed) of ``new`` against ``old``; None when either has no value."""
    if new.get("value") is None or old.get("value") is None:
        return None
    delta = float(new["value"]) - float(old["value"])
    allowed = tolerance_of(old, tolerance)
    worse = -delta if higher_is_better(new) else delta
    return delta, allowed, worse > allowed + 1e-12


def apply(result: CheckResult, baseline: Baseline, tolerance: float | None) -> CheckResult:
    """The result with its comparison to the baseline in ``details``; a regression fails it."""
    old = baseline.checks.get(result.id)
    if old is None:
        result.details["baseline"] = {"value": None, "note": "not in the baseline"}
        return result
    compared = regression(result.to_json(), old, tolerance)
    if compared is None:
        result.details["baseline"] = {"value": old.get("value"), "note": "no value to compare"}
        return result
    delta, allowed, regressed = compared
    result.details["baseline"] = {"value": old["value"], "delta": delta, "tolerance": allowed, "regressed": regressed}
    if regressed:
        result.passed = False
        result.details["regression"] = (
            f"{result.id} = {format_number(result.value)}, was {format_number(old['value'])} in baseline "
            f"{baseline.path.name} (tolerance {format_number(allowed)})"
        )
    return result


# -- python -m pytest_unlearn compare OLD.json NEW.json [...] -----------------------------------


def compare_table(cards: list[tuple[str, dict[str, Any]]], *, markdown: bool) -> tuple[list[str], int]:
    """Checks and numeric aggregates side by side, each later card's delta against the first;
    returns the lines and the number of regressions (a pass turned fail, or worse beyond the
    first card's interval half-width)."""
    first = {c["id"]: c for c in cards[0][1]["checks"]}
    order: list[str] = []
    for _, card in cards:
        order += [c["id"] for c in card["checks"] if c["id"] not in order]
    header = ["check", *[name for name, _ in cards]]
    rows = []
    if any(card.get("status") != "complete" for _, card in cards):
        from pytest_unlearn.report import status_text

        # A card left "running" by a killed run reads as interrupted, not as a finished run.
        rows.append(["status", *[status_text(str(card.get("status"))) for _, card in cards]])
    regressions = 0
    for check_id in order:
        row = [check_id]
        for index, (_, card) in enumerate(cards):
            check = {c["id"]: c for c in card["checks"]}.get(check_id)
            if check is None:
                row.append("-")
                continue
            cell = f"{format_number(check.get('value'))} {'PASS' if check.get('passed') else 'FAIL'}"
            old = first.get(check_id)
            if index > 0 and old is not None:
                compared = regression(check, old, None)
                worse = bool(old.get("passed")) and not check.get("passed")
                if compared is not None:
                    cell += f" ({compared[0]:+.4g})"
                    worse = worse or compared[2]
                if worse:
                    cell += " REGRESSION"
                    regressions += 1
            row.append(cell)
        rows.append(row)
    aggregates: list[str] = []
    for _, card in cards:
        aggregates += [k for k, v in card.get("aggregates", {}).items() if _number(v) and k not in aggregates]
    for key in aggregates:
        values = [card.get("aggregates", {}).get(key) for _, card in cards]
        row = [f"aggregate {key}"]
        for index, value in enumerate(values):
            cell = format_number(value) if _number(value) else "-"
            if index > 0 and _number(value) and _number(values[0]):
                cell += f" ({value - values[0]:+.4g})"
            row.append(cell)
        rows.append(row)
    return _render([header, *rows], markdown), regressions


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _render(rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "| " + " | ".join("---" for _ in rows[0]) + " |"]
        return lines + ["| " + " | ".join(row) + " |" for row in rows[1:]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def compare_main(paths: list[Path], markdown: bool) -> int:
    """Exit 0: no regression, 1: a regression, 2: bad input (one ``ERROR:`` line)."""
    import sys

    try:
        if len(paths) < 2:
            raise UnlearnError("compare needs two scorecards or more: OLD.json NEW.json [...]")
        cards = [(path.name, read_scorecard(path, "compare")[0]) for path in paths]
        suites = {((c.get("suite") or {}).get("name"), (c.get("suite") or {}).get("version")) for _, c in cards}
        if len(suites) > 1:
            names = ", ".join(f"{n} {v}" for n, v in sorted(suites, key=str))
            raise UnlearnError(f"compare: the scorecards are of different suites ({names}); compare runs of one suite")
    except UnlearnError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    lines, regressions = compare_table(cards, markdown=markdown)
    print("\n".join(lines))
    if regressions:
        print(f"{regressions} regression(s) against {cards[0][0]}")
    return 1 if regressions else 0
