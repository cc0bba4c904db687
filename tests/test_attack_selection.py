"""selection: -k, --deselect, -m, ini addopts, --lf, --sw, -x, a conftest that drops or skips running checks, your own tests only, xdist: a check of the suite that produced no value is never a pass."""

from __future__ import annotations

import pytest

from tests.attack_helpers import SEMEVAL_CHECKS, TEXT, card, leaky_predictions, run

GATE_LINE = (
    "unlearn: gate not passed: {n} of 16 checks of suite semeval produced no value ({shown}); run the whole suite*"
)


def shown(missing: list[str]) -> str:
    return ", ".join(missing[:8]) + (f", ... ({len(missing) - 8} more)" if len(missing) > 8 else "")


def assert_partial(result: pytest.RunResult, pytester: pytest.Pytester, missing: list[str]) -> dict:
    """Exit 1, a partial card listing exactly ``missing``, and the one line saying so."""
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    found = card(pytester)
    assert found["status"] == "partial" and found["passed"] is False
    assert found["missing_checks"] == missing
    assert found["gate"]["required"] == 16 and found["gate"]["produced"] == 16 - len(missing)
    result.stdout.fnmatch_lines([GATE_LINE.format(n=len(missing), shown=shown(missing).replace("[", "[[]"))])
    return found


def test_k_retain_the_issue_case(pytester, perfect_unlearning_predictions):
    # Every selected check passes: before, exit 0 and "complete, passed" with 10 of 16 never run.
    result = run(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "retain")
    result.assert_outcomes(passed=6, deselected=10)
    found = assert_partial(result, pytester, [c for c in SEMEVAL_CHECKS if "retain" not in c])
    assert all(c["passed"] for c in found["checks"]) and len(found["checks"]) == 6


def test_deselect_one_check(pytester, perfect_unlearning_predictions):
    result = run(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", TEXT,
        "--deselect", "semeval::task1-knowledge-forget",
    )  # fmt: skip
    assert_partial(result, pytester, ["task1-knowledge-forget", "mia-score", "mmlu", "final-score"])


def test_ini_addopts_k(pytester, perfect_unlearning_predictions):
    pytester.makeini(
        f"[pytest]\naddopts = -k retain\nunlearn_suite = semeval\nunlearn_predictions = {perfect_unlearning_predictions}\n"
    )
    result = run(pytester)
    assert_partial(result, pytester, [c for c in SEMEVAL_CHECKS if "retain" not in c])


def test_m_expression_selecting_no_check(pytester, perfect_unlearning_predictions):
    # Nothing of the suite runs: no card is written, and the run does not pass.
    result = run(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-m", "slow")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert not (pytester.path / "unlearn-scorecard.json").exists()
    result.stdout.fnmatch_lines([GATE_LINE.format(n=16, shown=shown(SEMEVAL_CHECKS)).replace("[", "[[]")])


def test_only_your_own_tests_run_beside_the_suite(pytester, perfect_unlearning_predictions):
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = run(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "test_mine.py", "-k", "mine"
    )
    result.assert_outcomes(passed=1, deselected=16)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["unlearn: gate not passed: 16 of 16 checks of suite semeval produced no value*"])


def test_conftest_that_removes_and_reorders_items(pytester, perfect_unlearning_predictions):
    pytester.makeconftest(
        """
        def pytest_collection_modifyitems(items):
            kept = [i for i in items if "task2" not in i.name]
            items[:] = list(reversed(kept))
        """
    )
    result = run(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", TEXT)
    missing = [c for c in SEMEVAL_CHECKS if "task2" in c or c in ("mia-score", "mmlu", "final-score")]
    assert_partial(result, pytester, missing)


def test_conftest_whose_runtest_protocol_runs_nothing(pytester, perfect_unlearning_predictions):
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_protocol(item, nextitem):
            if item.name.startswith("task1-knowledge"):
                return True  # "handled": no setup, no call, no report
        """
    )
    result = run(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", TEXT)
    assert_partial(
        result, pytester, ["task1-knowledge-forget", "task1-knowledge-retain", "mia-score", "mmlu", "final-score"]
    )


def test_exitfirst_with_a_failing_check_first(pytester, tmp_path):
    leaky = leaky_predictions(tmp_path / "leaky.jsonl")
    result = run(pytester, "--suite=semeval", f"--predictions={leaky}", "-x")
    assert_partial(result, pytester, SEMEVAL_CHECKS[1:])
    assert card(pytester)["checks"][0]["passed"] is False


def test_stepwise_stops_at_the_first_failure(pytester, tmp_path):
    leaky = leaky_predictions(tmp_path / "leaky.jsonl")
    result = run(pytester, "--suite=semeval", f"--predictions={leaky}", "--sw", cacheprovider=True)
    # Stepwise stops the session as an interruption: exit 2, the card "incomplete", never passed.
    assert result.ret == pytest.ExitCode.INTERRUPTED
    found = card(pytester)
    assert found["status"] == "incomplete" and found["passed"] is False
    assert found["missing_checks"] == SEMEVAL_CHECKS[1:]
    result.stdout.fnmatch_lines(["status: incomplete (checks not run: task1-knowledge-forget, *final-score)"])


def test_last_failed_does_not_shrink_the_suite(pytester, tmp_path, perfect_unlearning_predictions):
    leaky = leaky_predictions(tmp_path / "leaky.jsonl")
    run(pytester, "--suite=semeval", f"--predictions={leaky}", "-k", TEXT, cacheprovider=True)
    # The forget checks failed; after "fixing" the predictions, --lf must not rerun only them: the
    # suite's checks are made by the plugin, not found in files, so every one runs again.
    result = run(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "--lf", cacheprovider=True
    )
    found = card(pytester)
    assert [c["id"] for c in found["checks"]] == SEMEVAL_CHECKS
    assert found["status"] == "complete" and found["missing_checks"] == []
    # Without a model the model checks fail: the run does too.
    assert result.ret == pytest.ExitCode.TESTS_FAILED and found["passed"] is False


def test_collect_only_is_not_a_gate_run(pytester, perfect_unlearning_predictions):
    result = run(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "--co")
    assert result.ret == pytest.ExitCode.OK
    assert not (pytester.path / "unlearn-scorecard.json").exists()
    result.stdout.fnmatch_lines(["unlearn: no check ran (--collect-only); scorecard none written"])


@pytest.mark.parametrize("how", ["flag", "env", "ini"])
def test_unlearn_partial_accepts_a_subset_that_never_passes(pytester, perfect_unlearning_predictions, monkeypatch, how):
    args = ["--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "retain"]
    if how == "flag":
        args.append("--unlearn-partial")
    elif how == "env":
        monkeypatch.setenv("PYTEST_UNLEARN_PARTIAL", "1")
    else:
        pytester.makeini("[pytest]\nunlearn_partial = true\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.OK
    found = card(pytester)
    assert found["status"] == "partial" and found["passed"] is False
    assert found["gate"]["partial_requested"] is True
    assert found["missing_checks"] == [c for c in SEMEVAL_CHECKS if "retain" not in c]
    result.stdout.fnmatch_lines(
        [
            "unlearn: partial run (--unlearn-partial): 10 of 16 checks of suite semeval not run (*); the scorecard does not pass the suite"
        ]
    )


def test_unlearn_partial_still_fails_a_failing_check(pytester, tmp_path):
    leaky = leaky_predictions(tmp_path / "leaky.jsonl")
    result = run(pytester, "--suite=semeval", f"--predictions={leaky}", "-k", "task1", "--unlearn-partial")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert card(pytester)["status"] == "partial"


def test_threshold_override_keeps_every_check_required(pytester, perfect_unlearning_predictions):
    result = run(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "retain",
        "--threshold=task-aggregate=0.1",
    )  # fmt: skip
    found = assert_partial(result, pytester, [c for c in SEMEVAL_CHECKS if "retain" not in c])
    assert found["settings"]["threshold_overrides"] == {"task-aggregate": 0.1}


def test_xdist_controller_gates_on_the_manifest(pytester, perfect_unlearning_predictions):
    result = run(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", TEXT, "-n", "2")
    result.assert_outcomes(passed=13)
    assert_partial(result, pytester, ["mia-score", "mmlu", "final-score"])
