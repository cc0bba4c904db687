"""The plugin through pytest itself (pytester), in --predictions mode: no model needed."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import SEMEVAL_DATA, semeval_rows

TEXT_CHECKS = "not mia and not mmlu and not final"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # no_reraise_ctrlc: an interrupt inside the inner run must not stop this test session.
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args, no_reraise_ctrlc=True)


def test_each_check_is_a_test_with_a_readable_id(pytester, perfect_unlearning_predictions):
    # The model checks are left out on purpose (no model): --unlearn-partial.
    result = run(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "-v", "-k", TEXT_CHECKS,
        "--unlearn-partial",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "*collected 16 items / 3 deselected / 13 selected",
            "semeval::task1-regurgitation-forget[[]>=0.6] PASSED*",
            "semeval::task2-knowledge-forget[[]>=0.6] PASSED*",
            "semeval::task3-knowledge-retain[[]>=0.4] PASSED*",
            "semeval::task-aggregate[[]>=0.5] PASSED*",
            "*unlearn scorecard: semeval 2025.1*",
            "task-aggregate * >= 0.5000*PASS*",
        ]
    )
    assert result.ret == 0
    result.assert_outcomes(passed=13, deselected=3)


def test_scorecard_contract(pytester, perfect_unlearning_predictions):
    result = run(
        pytester,
        "--suite",
        "semeval",
        f"--predictions={perfect_unlearning_predictions}",
        "-k",
        TEXT_CHECKS,
        "--unlearn-partial",
        "--scorecard",
        "out/card.json",
    )
    assert result.ret == 0
    card = json.loads((pytester.path / "out" / "card.json").read_text())
    assert card["schema"] == "pytest-unlearn/scorecard/1"
    assert card["suite"]["name"] == "semeval" and card["suite"]["version"] == "2025.1"
    # 13 of the 16 checks, on purpose: never a pass for the suite (tests/test_attack_selection.py).
    assert card["status"] == "partial" and card["passed"] is False
    assert card["missing_checks"] == ["mia-score", "mmlu", "final-score"]
    check = next(c for c in card["checks"] if c["id"] == "task2-knowledge-forget")
    # 12 forget QA prompts of Task2, none answered: raw exact match 0, inverted term 1.
    assert check == {
        "id": "task2-knowledge-forget",
        "metric": "semeval.subtask",
        "value": 1.0,
        "threshold": 0.6,
        "op": ">=",
        "passed": True,
        "n": 12,
        "ci95": [1.0, 1.0],
        "higher_is_better": True,
        "unit": "score",
        "details": {"raw_mean": 0.0},
        "error": None,
    }
    assert card["aggregates"]["task_aggregate"] == 1.0
    assert set(card) >= {"model", "artifacts", "environment", "timings", "settings"}
    generations = [json.loads(line) for line in Path(card["artifacts"]["generations"]).read_text().splitlines()]
    assert len(generations) == len(semeval_rows("forget")) + len(semeval_rows("retain"))
    assert set(generations[0]) == {"id", "task", "kind", "split", "input", "expected", "output", "score"}


def test_failing_check_fails_the_run_with_one_line(pytester, tmp_path):
    # A model that regurgitates the forget set: every forget term is 1 - 1 = 0.
    rows = [{"id": r["id"], "output": r["output"]} for split in ("forget", "retain") for r in semeval_rows(split)]
    predictions = tmp_path / "leaky.jsonl"
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run(pytester, "--suite", "semeval", f"--predictions={predictions}", "-k", "task2-knowledge-forget")
    result.stdout.fnmatch_lines(["task2-knowledge-forget = 0.0000, needs >= 0.6000 (n=12, 95% CI 0.000-0.000)"])
    assert "Traceback" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_threshold_override_changes_the_verdict_and_the_id(pytester, perfect_unlearning_predictions):
    result = run(
        pytester,
        "--suite",
        "semeval",
        f"--predictions={perfect_unlearning_predictions}",
        "-v",
        "-k",
        "task-aggregate",
        "--threshold",
        "task-aggregate=1.5",
    )
    result.stdout.fnmatch_lines(
        ["*unlearn: overrides --threshold task-aggregate=1.5*", "semeval::task-aggregate[[]>=1.5] FAILED*"]
    )


def test_checks_needing_the_model_fail_clearly_in_predictions_mode(pytester, perfect_unlearning_predictions):
    result = run(pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "mmlu")
    result.stdout.fnmatch_lines(["mmlu: the MMLU gate needs the model itself: pass --model PATH"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_junit_xml_carries_value_and_threshold_properties(pytester, perfect_unlearning_predictions):
    run(
        pytester,
        "--suite",
        "semeval",
        f"--predictions={perfect_unlearning_predictions}",
        "-k",
        "task-aggregate",
        "--junitxml",
        "junit.xml",
    )
    case = ET.parse(pytester.path / "junit.xml").getroot().find(".//testcase")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["unlearn.value"] == "1.0" and props["unlearn.threshold"] == "0.5"
    assert props["unlearn.op"] == ">=" and props["unlearn.passed"] == "true" and props["unlearn.n"] == "108"


def test_suite_run_ignores_test_files_unless_paths_are_named(pytester, perfect_unlearning_predictions):
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    args = ("--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "mine or task-aggregate")
    run(pytester, *args).assert_outcomes(passed=1, deselected=15)
    run(pytester, *args, "test_mine.py").assert_outcomes(passed=2, deselected=15)


def test_plain_pytest_is_untouched_without_suite(pytester):
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "unlearn-scorecard.json").exists()


def test_keyboard_interrupt_keeps_finished_checks_in_an_incomplete_scorecard(pytester, perfect_unlearning_predictions):
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_call(item):
            if "task3" in item.name:
                raise KeyboardInterrupt
        """
    )
    result = run(pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "-k", TEXT_CHECKS)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert card["status"] == "incomplete"
    assert [c["id"] for c in card["checks"]] == [
        "task1-regurgitation-forget",
        "task1-knowledge-forget",
        "task2-regurgitation-forget",
        "task2-knowledge-forget",
    ]
    assert "task3-regurgitation-forget" in card["missing_checks"]


def test_ini_options_configure_a_run(pytester, perfect_unlearning_predictions):
    pytester.makeini(
        f"""
        [pytest]
        unlearn_suite = semeval
        unlearn_predictions = {perfect_unlearning_predictions}
        unlearn_threshold =
            task-aggregate=0.25
        """
    )
    result = run(pytester, "-v", "-k", "task-aggregate")
    result.stdout.fnmatch_lines(["semeval::task-aggregate[[]>=0.25] PASSED*"])


def test_parquet_data_is_read_like_jsonl(pytester, perfect_unlearning_predictions, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    data.mkdir()
    for split in ("forget", "retain"):
        pq.write_table(pa.Table.from_pylist(semeval_rows(split)), data / f"{split}_train-00000-of-00001.parquet")
    result = run(
        pytester,
        "--suite",
        "semeval",
        f"--data={data}",
        f"--predictions={perfect_unlearning_predictions}",
        "-k",
        TEXT_CHECKS,
    )
    result.assert_outcomes(passed=13, deselected=3)


def test_loading_the_plugin_imports_no_heavy_library():
    code = (
        "import sys, pytest_unlearn.plugin, pytest_unlearn.evaluation, pytest_unlearn.semeval.evaluation;"
        "heavy = [m for m in ('torch', 'transformers', 'diffusers', 'open_clip', 'sklearn') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_bundled_data_files_are_where_the_manifest_says():
    assert (SEMEVAL_DATA / "forget.jsonl").is_file() and (SEMEVAL_DATA / "mia" / "member.jsonl").is_file()


def test_setting_overrides_the_manifest_and_is_recorded(pytester, perfect_unlearning_predictions):
    """--setting replaces a [settings] value for every backend: here the bootstrap's count and
    seed, visible in the report header and the scorecard."""
    cards = {}
    for seed in (0, 7):
        result = run(
            pytester,
            "--suite",
            "semeval",
            f"--predictions={perfect_unlearning_predictions}",
            "-k",
            "task-aggregate",
            "--setting=bootstrap_samples=50",
            f"--setting=seed={seed}",
            f"--scorecard=card{seed}.json",
        )
        result.stdout.fnmatch_lines([f"unlearn: suite semeval *bootstrap_seed={seed} bootstrap_samples=50*"])
        cards[seed] = json.loads((pytester.path / f"card{seed}.json").read_text())
        assert cards[seed]["settings"]["bootstrap_samples"] == 50 and cards[seed]["settings"]["seed"] == seed
    (first,), (second,) = cards[0]["checks"], cards[7]["checks"]
    assert first["value"] == second["value"]
