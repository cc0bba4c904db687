"""marks: skip, skipif and xfail put on suite checks by a conftest or a -p plugin, pytest.skip/xfail from hooks, hooks that swallow failures or rewrite outcomes, --runxfail: refused with one line naming who, never an xpass counted as a pass, no INTERNALERROR."""

from __future__ import annotations

import pytest

from tests.attack_helpers import TEXT, card, leaky_predictions, run


def refused(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("ERROR: unlearn: ")]


@pytest.mark.parametrize(
    "mark",
    ['pytest.mark.xfail(reason="flaky")', "pytest.mark.skip", 'pytest.mark.skipif(True, reason="slow")', '"skip"'],
)
def test_conftest_marks_every_item(pytester, tmp_path, mark):
    """The issue's case: xfail on every item gave "9 xfailed, 7 xpassed", exit 0; skip an INTERNALERROR."""
    pytester.makeconftest(
        f"""
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker({mark})
        """
    )
    leaky = leaky_predictions(tmp_path / "leaky.jsonl")
    result = run(pytester, "--suite=semeval", f"--predictions={leaky}", "-k", TEXT, "--unlearn-partial")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    outcomes = result.parseoutcomes()
    assert not {"xfailed", "xpassed", "skipped"} & set(outcomes), outcomes
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    name = mark.split("(")[0].replace("pytest.mark.", "").strip('"')
    # The marks were dropped: every check ran and kept its verdict (the forget ones fail).
    assert outcomes["failed"] >= 6 and outcomes["passed"] >= 6
    line = (
        f"pytest.mark.{name} applied to 16 suite checks (semeval::task1-regurgitation-forget[>=0.6], "
        "semeval::task1-knowledge-forget[>=0.6], semeval::task2-regurgitation-forget[>=0.6], ...) by conftest.py:5 "
        "(pytest_collection_modifyitems)"
    )
    assert refused(result) == [f"ERROR: unlearn: {line}"]
    found = card(pytester)
    assert found["passed"] is False and found["gate"]["refused_marks"] == [line]


def test_plugin_module_given_with_p(pytester, perfect_unlearning_predictions):
    pytester.syspathinsert()
    pytester.makepyfile(
        evilplugin="""
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.xfail(strict=False))
        """
    )
    result = run(
        pytester, "-p", "evilplugin", "--suite=semeval", f"--predictions={perfect_unlearning_predictions}",
        "-k", "task1-knowledge-forget", "--unlearn-partial",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "xpassed" not in result.parseoutcomes()
    assert refused(result) == [
        "ERROR: unlearn: pytest.mark.xfail applied to semeval::task1-knowledge-forget[>=0.6] by evilplugin.py:6 "
        "(pytest_collection_modifyitems)"
    ]


def test_mark_added_at_setup_time(pytester, perfect_unlearning_predictions):
    pytester.makeconftest(
        """
        import pytest

        def pytest_runtest_setup(item):
            item.add_marker(pytest.mark.xfail(run=False))
        """
    )
    result = run(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "task2-knowledge-forget",
        "--unlearn-partial",
    )  # fmt: skip
    result.assert_outcomes(passed=1, deselected=15)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert refused(result) == [
        "ERROR: unlearn: pytest.mark.xfail applied to semeval::task2-knowledge-forget[>=0.6] by conftest.py:4 "
        "(pytest_runtest_setup)"
    ]


def test_marks_put_on_own_markers_directly(pytester, perfect_unlearning_predictions):
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.own_markers.append(pytest.mark.skip(reason="bypass").mark)
        """
    )
    result = run(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "task3-knowledge-retain",
        "--unlearn-partial",
    )  # fmt: skip
    result.assert_outcomes(passed=1, deselected=15)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert refused(result) == [
        "ERROR: unlearn: pytest.mark.skip put on semeval::task3-knowledge-retain[>=0.4] by a conftest or plugin"
    ]


def test_pytest_skip_from_a_setup_hook(pytester, perfect_unlearning_predictions):
    pytester.makeconftest(
        """
        import pytest

        def pytest_runtest_setup(item):
            if "forget" in item.name:
                pytest.skip("not today")
        """
    )
    result = run(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", TEXT)
    result.assert_outcomes(passed=7, skipped=6, deselected=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    found = card(pytester)
    assert found["status"] == "partial" and "task1-knowledge-forget" in found["missing_checks"]
    assert refused(result) == [
        "ERROR: unlearn: 6 suite checks (semeval::task1-regurgitation-forget[>=0.6], semeval::task1-knowledge-forget"
        "[>=0.6], semeval::task2-regurgitation-forget[>=0.6], ...) skipped at conftest.py:5 (Skipped: not today); a "
        "suite check cannot be skipped"
    ]


def test_pytest_xfail_from_a_call_hook(pytester, tmp_path):
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_call(item):
            pytest.xfail("known leak")
        """
    )
    leaky = leaky_predictions(tmp_path / "leaky.jsonl")
    result = run(
        pytester, "--suite=semeval", f"--predictions={leaky}", "-k", "task1-knowledge-forget", "--unlearn-partial"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert refused(result) == [
        "ERROR: unlearn: semeval::task1-knowledge-forget[>=0.6] turned into an expected failure from outside the "
        "suite (known leak); a suite check cannot be xfailed"
    ]
    assert "task1-knowledge-forget" in card(pytester)["missing_checks"]


def test_call_wrapper_that_swallows_the_failure(pytester, tmp_path):
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_call(item):
            try:
                yield
            except Exception:
                return None
        """
    )
    leaky = leaky_predictions(tmp_path / "leaky.jsonl")
    result = run(
        pytester, "--suite=semeval", f"--predictions={leaky}", "-k", "task1-knowledge-forget", "--unlearn-partial"
    )
    result.assert_outcomes(passed=1, deselected=15)  # what pytest believes
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "ERROR: unlearn: 1 check(s) failed but pytest reported no failure (task1-knowledge-forget); a hook or "
            "plugin changed their outcome: the exit status follows the scorecard"
        ]
    )
    assert card(pytester)["checks"][0]["passed"] is False


def test_makereport_hook_that_rewrites_the_outcome(pytester, tmp_path):
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(item, call):
            report = yield
            report.outcome = "passed"
            report.longrepr = None
            return report
        """
    )
    leaky = leaky_predictions(tmp_path / "leaky.jsonl")
    result = run(
        pytester, "--suite=semeval", f"--predictions={leaky}", "-k", "task2-knowledge-forget", "--unlearn-partial"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["ERROR: unlearn: 1 check(s) failed but pytest reported no failure (task2-knowledge-forget)*"]
    )


def test_runxfail_with_xfail_marks(pytester, tmp_path):
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.xfail)
        """
    )
    leaky = leaky_predictions(tmp_path / "leaky.jsonl")
    result = run(
        pytester,
        "--suite=semeval",
        f"--predictions={leaky}",
        "-k",
        "task3-knowledge-forget",
        "--unlearn-partial",
        "--runxfail",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, deselected=15)
    assert len(refused(result)) == 1


def test_disabling_the_plugin_is_a_usage_error(pytester, perfect_unlearning_predictions):
    result = run(pytester, "-p", "no:unlearn", "--suite=semeval", f"--predictions={perfect_unlearning_predictions}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*error: unrecognized arguments: *--suite=semeval*"])
