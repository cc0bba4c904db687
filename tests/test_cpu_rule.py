"""The CPU rule on a shared machine: when other processes are busy as a run starts, OpenMP's
waiting threads yield their core (``OMP_WAIT_POLICY=PASSIVE``, set before torch is imported
unless the user chose a policy); the report header says the rule. Why: benchmarks/busy_machine.py
(the semeval world's passes beside one busy process: 3.4x their quiet time with spinning
threads on 2 cores, 0.75x passive; passive costs 2.1x on a quiet machine, hence only when busy)."""

from __future__ import annotations

import pytest

from pytest_unlearn.workers import WAIT_POLICY_ENV, choose_wait_policy, cpu_rule


def test_passive_is_set_when_the_machine_is_busy_and_nobody_chose_a_policy():
    environ: dict[str, str] = {}
    phrase = choose_wait_policy(environ, torch_loaded=False, busy=1.04, cores=2)
    assert environ == {WAIT_POLICY_ENV: "PASSIVE"}
    assert phrase.startswith("OMP_WAIT_POLICY=PASSIVE (1.0 of 2 cores busy with other processes at start")


def test_a_quiet_machine_keeps_spinning_threads():
    environ: dict[str, str] = {}
    phrase = choose_wait_policy(environ, torch_loaded=False, busy=0.2, cores=2)
    assert environ == {}
    assert phrase.startswith("OMP_WAIT_POLICY unset (0.2 of 2 cores busy at start: quiet")


def test_a_policy_of_the_user_is_kept():
    environ = {WAIT_POLICY_ENV: "ACTIVE"}
    assert choose_wait_policy(environ, torch_loaded=False, busy=2.0, cores=2) == "OMP_WAIT_POLICY=ACTIVE (yours)"
    assert environ == {WAIT_POLICY_ENV: "ACTIVE"}


def test_too_late_when_torch_is_already_imported():
    environ: dict[str, str] = {}
    phrase = choose_wait_policy(environ, torch_loaded=True, busy=2.0, cores=2)
    assert environ == {}  # libgomp has read the environment already: setting it now would change nothing
    assert phrase.startswith("OMP_WAIT_POLICY unset (torch was imported before the plugin could choose")


def test_the_header_line_names_cores_threads_and_policy(monkeypatch):
    monkeypatch.setattr("pytest_unlearn.workers.cpu_count", lambda: 8)
    assert cpu_rule(0, "P") == "unlearn: CPU 8 usable cores (sched_getaffinity), torch's own thread count, P"
    assert cpu_rule(3, "P") == (
        "unlearn: CPU 8 usable cores (sched_getaffinity), 2 torch threads in each of 3 xdist workers, P"
    )


@pytest.mark.parametrize("given", ["PASSIVE", "ACTIVE"])
def test_a_run_keeps_the_policy_it_is_given_and_prints_it(pytester, perfect_unlearning_predictions, monkeypatch, given):
    """A fresh process (torch not imported): the run's own tests see the policy the header states."""
    monkeypatch.setenv(WAIT_POLICY_ENV, given)
    pytester.makepyfile(
        test_policy=f"""
        import os

        def test_policy_in_the_environment():
            assert os.environ["OMP_WAIT_POLICY"] == "{given}"
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-v", "test_policy.py", "--suite=semeval",
        f"--predictions={perfect_unlearning_predictions}", "-k", "policy or task1", "--unlearn-partial",
        "--scorecard=card.json",
    )  # fmt: skip
    result.stdout.fnmatch_lines([f"unlearn: CPU * usable cores (sched_getaffinity), *OMP_WAIT_POLICY={given} (yours)*"])
    result.stdout.fnmatch_lines(["*test_policy.py::test_policy_in_the_environment PASSED*"])


def test_busy_cores_sees_another_busy_process():
    """/proc/stat read twice: a process spinning on a core shows as about one busy core."""
    import subprocess
    import sys

    from pytest_unlearn.workers import busy_cores

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.3)
        assert busy_cores(0.5) >= 0.8
    finally:
        spinner.kill()
        spinner.wait()


def test_a_run_beside_a_busy_process_sets_passive_before_torch(pytester, perfect_unlearning_predictions, monkeypatch):
    """Another process keeps a core busy as the run starts: the run sets PASSIVE in the
    environment its tests and model passes see, before torch is imported."""
    import subprocess
    import sys
    import time

    monkeypatch.delenv(WAIT_POLICY_ENV, raising=False)
    pytester.makepyfile(
        test_policy="""
        import os

        def test_policy_in_the_environment():
            assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
        """
    )
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-v", "test_policy.py", "--suite=semeval",
            f"--predictions={perfect_unlearning_predictions}", "-k", "policy or task1", "--unlearn-partial",
            "--scorecard=card.json",
        )  # fmt: skip
    finally:
        spinner.kill()
        spinner.wait()
    result.stdout.fnmatch_lines(["unlearn: CPU * OMP_WAIT_POLICY=PASSIVE (* of * cores busy with other processes*"])
    result.stdout.fnmatch_lines(["*test_policy.py::test_policy_in_the_environment PASSED*"])
