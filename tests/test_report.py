"""The HTML report next to the scorecard: self-contained, the check table, the suite's sections."""

from __future__ import annotations

import json
import re

import pytest

from pytest_unlearn.report import interval_svg
from tests.test_baseline import predictions


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "--setting=bootstrap_samples=200", *args)


def test_the_interval_bar_by_hand():
    svg = interval_svg(0.5, 0.6, (0.4, 0.7), ">=")
    # On [0, 1] over 160 px with 6 px each side: x(v) = 6 + 148 v.
    assert '<line x1="94.8" x2="94.8"' in svg  # the threshold, 6 + 148 * 0.6
    assert '<rect x="94.8" y="7" width="59.2"' in svg  # the passing side, up to 154
    assert '<line x1="65.2" x2="109.6" y1="9"' in svg  # the interval 0.4-0.7
    assert '<circle cx="80.0"' in svg  # the value
    lower = interval_svg(2.0, 5.0, None, "<=")  # not a score: scaled to its own numbers
    assert '<rect x="6.0" y="7" width="148.0"' in lower and '<circle cx="6.0"' in lower


def test_a_failed_gate_report_shows_checks_worst_examples_and_the_baseline(pytester, tmp_path):
    run(
        pytester,
        "--suite",
        "semeval",
        f"--predictions={predictions(tmp_path, 'old.jsonl', 0)}",
        "--scorecard=old.json",
        "-k",
        "not mia and not mmlu and not final",
    )
    run(
        pytester,
        "--suite",
        "semeval",
        f"--predictions={predictions(tmp_path, 'new.jsonl', 2)}",
        "--scorecard=card.json",
        "--baseline=old.json",
        "-k",
        "not mia and not mmlu and not final",
    )
    card = json.loads((pytester.path / "card.json").read_text())
    assert card["artifacts"]["report"] == "card.html"
    page = (pytester.path / "card.html").read_text()
    assert page.startswith("<!doctype html>") and "FAILED" in page
    assert not re.search(r"(src|href)=[\"']?https?:", page)  # nothing from the network
    for check in card["checks"]:
        assert f"<td>{check['id']}</td>" in page
    assert page.count('<span class="FAIL">FAIL</span>') == sum(not c["passed"] for c in card["checks"])
    assert "REGRESSION" in page and "baseline old.json" in page
    # Worst examples: the failing knowledge-forget checks list first the questions the model
    # still answers (its output is the expected answer, score 1).
    section = page.split("<h3>task1-knowledge-forget</h3>", 1)[1].split("</table>", 1)[0]
    first = section.split("<tr>")[2]
    expected, generated = re.findall(r"<pre>(.*?)</pre>", first, flags=re.S)[1:3]
    assert expected == generated and first.endswith("<td>1.000</td></tr>")


def test_a_model_run_adds_the_mia_histogram_and_mmlu_per_subject(pytester, semeval_models):
    run(
        pytester,
        "--suite",
        "semeval",
        f"--model={semeval_models['target']}",
        "--max-new-tokens=8",
        "--scorecard=card.json",
        "-k",
        "mia or mmlu",
    )
    card = json.loads((pytester.path / "card.json").read_text())
    page = (pytester.path / "card.html").read_text()
    assert (
        f"ROC AUC {card['aggregates']['mia_auc']:.4f}" in page
        and "■ members (18)" in page
        and "■ non-members (18)" in page
    )
    rows = [
        json.loads(line) for line in (pytester.path / card["artifacts"]["mmlu_predictions"]).read_text().splitlines()
    ]
    for subject in {r["subject"] for r in rows}:
        mine = [r for r in rows if r["subject"] == subject]
        assert f"<td>{subject}</td><td>{sum(r['correct'] for r in mine)}/{len(mine)}</td>" in page


def test_a_tofu_report_shows_the_questions_the_model_still_answers(pytester, tofu_models):
    pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=tofu-mini", f"--model={tofu_models['target']}",
        f"--reference={tofu_models['retain']}", "--scorecard=card.json", "--setting=bootstrap_samples=50",
    )  # fmt: skip
    card = json.loads((pytester.path / "card.json").read_text())
    assert {c["id"] for c in card["checks"] if not c["passed"]} >= {"forget-quality", "forget-rouge"}
    page = (pytester.path / "card.html").read_text()
    assert "Worst examples of the failing checks (forget-probability, forget-quality, forget-rouge)" in page
    logs = json.loads((pytester.path / card["artifacts"]["tofu_logs"]).read_text())["eval_log_forget.json"]
    best = max(logs["rougeL_recall"], key=lambda i: (logs["rougeL_recall"][i], -int(i)))
    section = page.split("forget questions the model still answers", 1)[1].split("</table>", 1)[0]
    first = section.split("<tr>")[2]  # after the header row: the most answered question first
    assert f"{logs['rougeL_recall'][best]:.3f}" in first
    assert f"forget quality (KS p-value) {card['aggregates']['forget_quality']:.3g}" in page
    assert "■ model (" in page and "■ reference (" in page
