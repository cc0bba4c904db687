"""Gates against the last release: --baseline regressions and ``python -m pytest_unlearn compare``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_unlearn.baseline import regression
from tests.conftest import semeval_rows
from tests.test_bad_input import usage_error

TEXT = "not mia and not mmlu and not final"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--setting=bootstrap_samples=200", *args)


def predictions(tmp_path: Path, name: str, leak_every: int) -> Path:
    """Every forget output wrong except each ``leak_every``-th question's answer (0: none), retain right."""
    rows, questions = [], 0
    for r in semeval_rows("forget"):
        leaked = False
        if r["id"][:-1].endswith("qa"):
            leaked = bool(leak_every) and questions % leak_every == 0
            questions += 1
        rows.append({"id": r["id"], "output": r["output"] if leaked else "qqq"})
    rows += [{"id": r["id"], "output": r["output"]} for r in semeval_rows("retain")]
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_regression_rule_by_hand():
    old = {"value": 0.86, "ci95": [0.82, 0.90], "op": ">=", "higher_is_better": True}
    # Tolerance: the baseline's half-width, (0.90 - 0.82) / 2 = 0.04.
    assert regression({"value": 0.81, "op": ">=", "higher_is_better": True}, old, None) == pytest.approx(
        (-0.05, 0.04, True)
    )
    assert regression({"value": 0.83, "op": ">=", "higher_is_better": True}, old, None)[2] is False
    assert regression({"value": 0.83, "op": ">=", "higher_is_better": True}, old, 0.0)[2] is True
    # Lower is better (a weight-change ratio): a rise is the regression.
    low = {"value": 2.0, "ci95": None, "op": "<=", "higher_is_better": False}
    assert regression({"value": 2.5, "op": "<=", "higher_is_better": False}, low, None) == pytest.approx(
        (0.5, 0.0, True)
    )
    assert regression({"value": 1.0, "op": "<=", "higher_is_better": False}, low, None)[2] is False
    assert regression({"value": None, "op": ">="}, old, None) is None


def test_a_check_worse_than_its_baseline_fails_as_a_regression(pytester, tmp_path):
    # The release before answered no forget question; this one answers 1 in 6: the knowledge
    # checks still pass their thresholds (>= 0.6), the regression fails them all the same.
    run(
        pytester,
        "--suite",
        "semeval",
        f"--predictions={predictions(tmp_path, 'old.jsonl', 0)}",
        "-k",
        TEXT,
        "--scorecard=old.json",
    )
    old = json.loads((pytester.path / "old.json").read_text())
    old_value = {c["id"]: c for c in old["checks"]}
    result = run(
        pytester,
        "--suite",
        "semeval",
        f"--predictions={predictions(tmp_path, 'new.jsonl', 6)}",
        "-k",
        TEXT,
        "--scorecard=new.json",
        "--baseline=old.json",
    )
    new = json.loads((pytester.path / "new.json").read_text())
    check = {c["id"]: c for c in new["checks"]}["task1-knowledge-forget"]
    was = old_value["task1-knowledge-forget"]
    tolerance = (was["ci95"][1] - was["ci95"][0]) / 2
    # By hand: 2 of task 1's 12 questions answered, against none before, whose interval is [1, 1].
    assert check["value"] == pytest.approx(1 - 2 / 12)
    assert was["value"] == 1.0
    assert tolerance == 0.0
    assert check["value"] >= check["threshold"]  # the threshold alone would pass it
    assert check["passed"] is False and check["details"]["baseline"]["regressed"] is True
    line = f"task1-knowledge-forget = {check['value']:.4f}, was {was['value']:.4f} in baseline old.json (tolerance {tolerance:.4f})"
    assert check["details"]["regression"] == line
    result.stdout.fnmatch_lines([f"*{line}*"])
    result.stdout.fnmatch_lines(
        ["check * vs baseline", f"task1-knowledge-forget *{check['value'] - was['value']:+.4g} REGRESSION"]
    )
    # Retain checks did not move: compared, not regressed.
    retain = {c["id"]: c for c in new["checks"]}["task1-knowledge-retain"]
    assert retain["details"]["baseline"] == {"value": 1.0, "delta": 0.0, "tolerance": 0.0, "regressed": False}
    assert new["baseline"] == {
        "path": "old.json",
        "sha256": hashlib.sha256((pytester.path / "old.json").read_bytes()).hexdigest(),
        "created": old["created"],
        "model_fingerprint": None,
    }
    # A generous tolerance lets the same run through (its thresholds decide again).
    run(
        pytester,
        "--suite",
        "semeval",
        f"--predictions={tmp_path / 'new.jsonl'}",
        "-k",
        "task1-knowledge-forget",
        "--scorecard=tol.json",
        "--baseline=old.json",
        "--baseline-tolerance=1",
    )
    tolerant = json.loads((pytester.path / "tol.json").read_text())["checks"][0]
    assert tolerant["details"]["baseline"]["regressed"] is False and "regression" not in tolerant["details"]


def test_baseline_errors_are_one_line(pytester, tmp_path):
    other = tmp_path / "genmu.json"
    other.write_text(
        json.dumps(
            {
                "schema": "pytest-unlearn/scorecard/1",
                "status": "complete",
                "suite": {"name": "genmu", "version": "1"},
                "checks": [],
            }
        )
    )
    p = predictions(tmp_path, "p.jsonl", 2)
    assert usage_error(pytester, "--suite", "semeval", f"--predictions={p}", f"--baseline={other}") == (
        f"ERROR: --baseline {other}: a scorecard of suite genmu 1, this run is semeval 2025.1; pass a baseline of the same suite and version"
    )
    running = tmp_path / "running.json"
    running.write_text(
        json.dumps(
            {
                "schema": "pytest-unlearn/scorecard/1",
                "status": "running",
                "suite": {"name": "semeval", "version": "2025.1"},
                "checks": [],
            }
        )
    )
    assert usage_error(pytester, "--suite", "semeval", f"--predictions={p}", f"--baseline={running}") == (
        f"ERROR: --baseline {running}: its status is 'running': interrupted (the run did not finish), not 'complete'; pass a finished run's scorecard"
    )
    assert usage_error(
        pytester, "--suite", "semeval", f"--predictions={p}", f"--baseline={tmp_path / 'none.json'}"
    ) == (f"ERROR: --baseline {tmp_path / 'none.json'}: no such file; pass a scorecard JSON of an earlier run")
    assert usage_error(pytester, "--suite", "semeval", f"--predictions={p}", f"--baseline={p}") == (
        f"ERROR: --baseline {p}: not JSON; pass a scorecard JSON of an earlier run"
    )
    assert usage_error(pytester, "--suite", "semeval", f"--predictions={p}", "--baseline-tolerance=0.1") == (
        "ERROR: --baseline-tolerance needs --baseline PATH (the scorecard to compare with)"
    )
    assert usage_error(pytester, "--suite", "semeval", f"--predictions={p}", "--baseline-tolerance=-1") == (
        "ERROR: --baseline-tolerance must be a non-negative number, got '-1'"
    )


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_unlearn", "compare", *args], capture_output=True, text=True)


def test_compare_shows_scorecards_side_by_side_and_exits_1_on_a_regression(pytester, tmp_path):
    for name, leak in (("a", 0), ("b", 6), ("c", 2)):
        run(
            pytester,
            "--suite",
            "semeval",
            f"--predictions={predictions(tmp_path, name + '.jsonl', leak)}",
            "-k",
            TEXT,
            f"--scorecard={name}.json",
        )
    a, b, c = (str(pytester.path / f"{n}.json") for n in "abc")
    cards = {n: {x["id"]: x for x in json.loads((pytester.path / f"{n}.json").read_text())["checks"]} for n in "abc"}
    worse = compare(a, b)
    assert worse.returncode == 1, worse.stderr
    lines = worse.stdout.splitlines()
    assert lines[0].split() == ["check", "a.json", "b.json"]
    row = next(line for line in lines if line.startswith("task1-knowledge-forget "))
    va, vb = cards["a"]["task1-knowledge-forget"]["value"], cards["b"]["task1-knowledge-forget"]["value"]
    # By hand: none answered (1.0) against 2 of 12 answered; both pass >= 0.6, b regressed.
    assert va == 1.0 and vb == pytest.approx(1 - 2 / 12)
    assert row.split() == ["task1-knowledge-forget", "1.0000", "PASS", f"{vb:.4f}", "PASS", "(-0.1667)", "REGRESSION"]
    assert lines[-1].endswith("regression(s) against a.json")
    assert any(line.startswith("aggregate task_aggregate") for line in lines)
    # Three columns for three scorecards, in Markdown; against b, c (1 answer in 2) regresses,
    # a (none answered) does not.
    table = compare(b, c, a, "--markdown")
    assert table.stdout.splitlines()[0] == "| check | b.json | c.json | a.json |" and table.returncode == 1
    assert compare(b, a).returncode == 0


def test_compare_bad_input_is_one_error_line_and_exit_2(tmp_path):
    one = tmp_path / "one.json"
    one.write_text("{}")
    result = compare(str(one), str(tmp_path / "missing.json"))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"ERROR: compare {one}: not a pytest-unlearn scorecard (schema pytest-unlearn/scorecard/1)"
    )
    assert compare(str(one)).stderr.strip() == "ERROR: compare needs two scorecards or more: OLD.json NEW.json [...]"
