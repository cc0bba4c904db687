"""What a CI system reads after a gate (issue 26): the report's path beside the scorecard's, a
one-line result for any CI log, and on GitHub Actions the check table in the job summary."""

from __future__ import annotations

import json
import re

import pytest

from pytest_unlearn.ci_summary import markdown, one_line
from tests.test_baseline import predictions

SELECTION = ("-k", "not mia and not mmlu and not final")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--setting=bootstrap_samples=200", *args)


def test_a_failed_gate_prints_the_report_path_and_one_result_line_and_fills_the_job_summary(
    pytester, tmp_path, monkeypatch
):
    summary = tmp_path / "step-summary.md"
    summary.write_text("## an earlier step's summary\n")  # GitHub appends every step's: keep it
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run(
        pytester, "--suite", "semeval", f"--predictions={predictions(tmp_path, 'p.jsonl', 2)}",
        "--scorecard=gate/card.json", *SELECTION,
    )  # fmt: skip
    card = json.loads((pytester.path / "gate" / "card.json").read_text())
    failed = [c["id"] for c in card["checks"] if not c["passed"]]
    assert failed and len(card["checks"]) > len(failed)  # a mixed run: some pass, some fail
    # The selection leaves checks of the suite without a value (issue 23): the line counts them.
    assert card["status"] == "partial" and card["missing_checks"] == ["mia-score", "mmlu", "final-score"]
    result.stdout.fnmatch_lines(
        [
            "scorecard: gate/card.json",
            "report: gate/card.html (one self-contained page: open it anywhere)",
            f"unlearn: FAIL semeval {card['suite']['version']} — {len(failed)} of {len(card['checks'])} checks "
            f"failed, {len(card['missing_checks'])} not run (scorecard: gate/card.json, report: gate/card.html)",
        ]
    )
    assert (pytester.path / "gate" / "card.html").is_file()
    text = summary.read_text()
    assert text.startswith("## an earlier step's summary\n### unlearn: semeval ")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| check ")]
    ids = [row.split(" | ")[0][2:] for row in rows]
    # Every check that ran, failing ones first (then selected ones that did not run: none here).
    assert ids[: len(failed)] == failed
    assert sorted(ids[: len(card["checks"])]) == sorted(c["id"] for c in card["checks"])
    assert ids[len(card["checks"]) :] == card["missing_checks"]
    for check in card["checks"]:
        row = rows[ids.index(check["id"])]
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert cells[1] == f"{check['value']:.4f}" and cells[2] == f"{check['op']} {check['threshold']:.4f}"
        assert cells[5] == ("PASS" if check["passed"] else "**FAIL**")


def test_no_job_summary_outside_github_and_an_incomplete_line_for_a_subset(pytester, tmp_path, monkeypatch,
                                                          perfect_unlearning_predictions):  # fmt: skip
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = run(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "--scorecard=card.json",
        "-k", "task1-knowledge-forget",
    )  # fmt: skip
    card = json.loads((pytester.path / "card.json").read_text())
    # -k leaves 15 checks of the suite without a value: the gate is not passed (issue 23).
    assert card["status"] == "partial" and not card["passed"] and len(card["missing_checks"]) == 15
    result.stdout.fnmatch_lines(
        ["unlearn: INCOMPLETE semeval * — 0 of 1 checks failed, 15 not run (scorecard: card.json, report: *)"]
    )
    assert not list(pytester.path.glob("*.md"))


def test_an_unwritable_job_summary_costs_one_warning_line_never_the_run(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "no-such-folder" / "summary.md"))
    result = run(
        pytester, "--suite", "semeval", f"--predictions={predictions(tmp_path, 'p.jsonl', 2)}",
        "--scorecard=card.json", "-k", "task1-knowledge-forget",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        [f"warning: GITHUB_STEP_SUMMARY={tmp_path}/no-such-folder/summary.md: cannot append the check table (*)*"]
    )
    assert (pytester.path / "card.json").is_file()


def test_the_markdown_by_hand():
    card = {
        "suite": {"name": "muse", "version": "1.0"},
        "status": "complete",
        "passed": False,
        "missing_checks": [],
        "warnings": ["a | pipe"],
        "checks": [
            {"id": "a", "value": 0.5, "op": ">=", "threshold": 0.4, "passed": True, "n": 3, "ci95": [0.25, 0.75]},
            {"id": "privleak", "value": 31.0, "op": "<=", "threshold": 20.0, "passed": False, "unit": "|%|"},
            {"id": "c", "value": None, "op": ">=", "threshold": 1.0, "passed": False, "error": "no\nmodel"},
        ],
    }
    text = markdown(card, "s.json")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "| privleak | 31.0000 | \\|x\\| <= 20.0000 |  |  | **FAIL** |",
        "| c | n/a (no model) | >= 1.0000 |  |  | **ERROR** |",
        "| a | 0.5000 | >= 0.4000 | 0.250–0.750 | 3 | PASS |",
    ]
    assert "> warning: a \\| pipe" in text
    assert one_line(card, "s.json") == "unlearn: FAIL muse 1.0 — 2 of 3 checks failed (scorecard: s.json)"
    assert one_line({**card, "status": "running"}, "s.json").startswith("unlearn: INTERRUPTED muse")
    assert re.fullmatch(r"unlearn: PASS muse 1\.0 — 0 of 0 checks failed \(scorecard: s\)",
                        one_line({**card, "checks": [], "passed": True}, "s"))  # fmt: skip
