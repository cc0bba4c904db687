"""The documented release-gate workflow (.github/workflows/release-gate.yml) stays valid.

Structure (a job whose steps gate with pytest, publish the JUnit report and upload the evidence
even when the gate fails), options (every flag of its run lines is one of ours or pytest's), and
the gate command itself, run on a tiny model, keeps the JUnit properties per test case.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import transformers.models.olmo.modeling_olmo  # noqa: F401
import yaml

from pytest_unlearn.options import OPTIONS
from tests.conftest import REPO
from tests.tiny_models import write_tiny_olmo

torch.set_num_threads(1)

WORKFLOW = REPO / ".github" / "workflows" / "release-gate.yml"
LONG_OPTION = re.compile(r"(?<![\w-])(--[A-Za-z][\w-]*)")
INI_OVERRIDE = re.compile(r"(?<![\w-])-o\s+([\w.]+)=")


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def gate_step(workflow: dict) -> dict:
    (step,) = [s for s in steps(workflow) if "run" in s and s["run"].lstrip().startswith("pytest")]
    return step


@pytest.fixture(scope="module")
def pytest_help() -> str:
    """pytest's own options and ini keys (and those of installed plugins, such as xdist's -n),
    without ours: ours are checked against pytest_unlearn.options.OPTIONS."""
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:unlearn", "-p", "no:cacheprovider", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_workflow_structure(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert {"workflow_dispatch", "push"} <= set(triggers)
    assert list(workflow["jobs"]) == ["gate"]
    names = [s.get("uses", "").split("@")[0] for s in steps(workflow)]
    assert "actions/checkout" in names and "actions/upload-artifact" in names
    assert "mikepenz/action-junit-report" in names
    gate = gate_step(workflow)
    assert "if" not in gate  # the gate's own exit status decides the job
    after = steps(workflow)[steps(workflow).index(gate) + 1 :]
    assert after and all(s.get("if") == "always()" for s in after), "reporting must run when the gate fails"
    upload = next(s for s in after if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"].rstrip("/") == "gate"
    report = next(s for s in after if s.get("uses", "").startswith("mikepenz/action-junit-report"))
    assert report["with"]["report_paths"] == "gate/junit.xml" and report["with"]["include_passed"] is True
    assert workflow["permissions"]["checks"] == "write"


def test_the_gate_writes_everything_into_the_uploaded_folder(workflow):
    command = gate_step(workflow)["run"]
    for flag in ("--model", "--suite", "--scorecard", "--artifacts", "--junitxml"):
        assert f"{flag}=" in command, flag
    assert '--scorecard="$GATE_DIR/scorecard.json"' in command  # the HTML report lands beside it
    assert '--artifacts="$GATE_DIR/artifacts"' in command and '--junitxml="$GATE_DIR/junit.xml"' in command
    (job,) = workflow["jobs"].values()
    assert job["env"]["GATE_DIR"] == "gate"
    assert "-o junit_family=xunit1" in command


def test_every_option_in_the_run_lines_is_documented(workflow, pytest_help):
    ours = {flag for spec in OPTIONS for flag in spec.flags} | {"--markdown"}  # + compare's (test below)
    theirs = set(re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", pytest_help))
    if "--junit-xml" in theirs:
        theirs.add("--junitxml")  # the spelling pytest's docs use; --help lists only --junit-xml
    theirs_short = set(re.findall(r"^\s+(-[A-Za-z])\b", pytest_help, flags=re.MULTILINE))
    ini_keys = set(re.findall(r"^\s{2}([a-z_]+) \(", pytest_help, flags=re.MULTILINE))
    assert {"--junitxml", "-o", "-p"} <= theirs | theirs_short and "junit_family" in ini_keys
    used_long, used_short, used_ini = set(), set(), set()
    for step in steps(workflow):
        for line in step.get("run", "").splitlines():
            if line.lstrip().startswith(("#", "print(", "import ", "from ")):
                continue
            used_long |= set(LONG_OPTION.findall(line))
            used_short |= set(re.findall(r"(?<![\w-])(-[A-Za-z])[A-Za-z]*(?=[\s=]|$)", line))
            used_ini |= set(INI_OVERRIDE.findall(line))
    assert used_long and used_ini
    assert sorted(used_long - ours - theirs) == []
    assert sorted(used_short - theirs_short - {"-c", "-e", "-d", "-f"}) == []  # pip -c/-e, test -d/-f
    assert sorted(used_ini - ini_keys) == []


def test_the_gate_command_runs_and_keeps_junit_properties_per_test_case(pytester, workflow, tmp_path, monkeypatch):
    """The workflow's own pytest line, on a tiny random model, one check."""
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))  # as on a GitHub runner
    model = tmp_path / "model"
    write_tiny_olmo(model)
    env = {"MODEL": str(model), "SUITE": "semeval", "GATE_DIR": str(pytester.path / "gate")}
    words = [_expand(word, env) for word in shlex.split(gate_step(workflow)["run"])]
    assert words[0] == "pytest"
    result = pytester.runpytest_inprocess(
        *words[1:], "--max-new-tokens=2", "-k", "task1-knowledge-forget or task1-regurgitation-forget"
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    gate = pytester.path / "gate"
    assert (gate / "scorecard.json").is_file() and (gate / "artifacts" / "generations.jsonl").is_file()
    root = ET.parse(gate / "junit.xml").getroot()
    (suite,) = root.iter("testsuite")
    assert suite.get("name") == "unlearn-release-gate"
    cases = list(suite.iter("testcase"))
    assert len(cases) == 2
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.find("properties")}
        assert set(props) == {f"unlearn.{k}" for k in ("metric", "value", "op", "threshold", "passed", "n", "ci95")}
        assert props["unlearn.metric"] == "semeval.subtask" and props["unlearn.op"] == ">="
    # The job summary gets the check table and the log ends with the one-line result.
    rows = [line for line in summary.read_text().splitlines() if line.startswith("| task1-")]
    ran = [row for row in rows if not row.endswith("| not run |")]
    assert len(ran) == 2
    # The 14 checks -k left out are listed as not run (issue 23: the gate is over the whole suite).
    assert sorted(row.split(" | ")[0][2:] for row in rows if row not in ran) == [
        "task1-knowledge-retain",
        "task1-regurgitation-retain",
    ]
    result.stdout.fnmatch_lines(
        ["unlearn: * semeval * — * of 2 checks failed, 14 not run (scorecard: */gate/scorecard.json, *)"]
    )


def _expand(word: str, env: dict[str, str]) -> str:
    return re.sub(r"\$(\w+)", lambda m: env[m.group(1)], word)


def test_the_summary_step_says_when_there_is_no_scorecard(workflow, tmp_path):
    """The check table comes from the gate step itself (the plugin appends it to
    $GITHUB_STEP_SUMMARY, tested above); the summary step covers a gate that wrote no scorecard."""
    step = next(s for s in steps(workflow) if s.get("name") == "Metric table in the job summary")
    summary = tmp_path / "summary.md"
    env = {**os.environ, "GATE_DIR": str(tmp_path / "gate"), "GITHUB_STEP_SUMMARY": str(summary)}
    completed = subprocess.run(["bash", "-c", step["run"]], capture_output=True, text=True, env=env)
    assert completed.returncode == 0, completed.stderr
    assert summary.read_text() == "No scorecard: the gate stopped before any check ran (see the step log).\n"
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / "scorecard.json").write_text("{}")
    summary.unlink()
    subprocess.run(["bash", "-c", step["run"]], check=True, env=env)
    assert not summary.exists()


def test_the_workflow_is_documented():
    doc = (REPO / "README.md").read_text(encoding="utf-8")
    assert ".github/workflows/release-gate.yml" in doc and "junit_family=xunit1" in doc
    assert Path(WORKFLOW).is_file()


def test_the_compare_step_uses_the_compare_command(workflow, tmp_path):
    """The summary's comparison is ``python -m pytest_unlearn compare`` with flags it has."""
    from pytest_unlearn.__main__ import main

    step = next(s for s in steps(workflow) if s.get("name") == "Compare with the previous release in the job summary")
    assert "python -m pytest_unlearn compare baseline/scorecard.json" in step["run"] and "--markdown" in step["run"]
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    fetch = next(s for s in steps(workflow) if s.get("name") == "Use it as the baseline")
    assert "PYTEST_UNLEARN_BASELINE=baseline/scorecard.json" in fetch["run"]
    assert any(spec.env == "PYTEST_UNLEARN_BASELINE" for spec in OPTIONS)
