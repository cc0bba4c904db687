"""Long runs say how far they are (issue 26): items done of the total, time elapsed, an estimate,
through pytest's terminal, quiet under -q, never splitting pytest's own progress line; a card a
killed run left "running" reads as interrupted in compare and --baseline."""

from __future__ import annotations

import json

import pytest

from pytest_unlearn.__main__ import main
from pytest_unlearn.progress import PhaseProgress, duration
from pytest_unlearn.registry import DETECTORS, EXTRACTORS, JUDGES, LOADERS
from tests import evallearn_helpers

RUN = ("-p", "no:cacheprovider")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_phase_progress_by_hand():
    clock, lines = Clock(), []
    progress = PhaseProgress(lines.append, "genmu original images", 8, clock=clock, every_s=10)
    assert lines == ["unlearn: genmu original images: 0/8, starting"]
    clock.now += 10
    progress.advance(2)  # the first batch always says so: 10 s for 2, so 6 more take 30 s
    assert lines[-1] == "unlearn: genmu original images: 2/8, 10s elapsed, about 30s left"
    clock.now += 5
    progress.advance(2)  # 5 s after the last line: too soon
    assert len(lines) == 2
    clock.now += 6
    progress.advance(1)  # 21 s for 5, 3 left: 12.6 s
    assert lines[-1] == "unlearn: genmu original images: 5/8, 21s elapsed, about 13s left"
    clock.now += 100
    progress.advance(3)
    assert lines[-1] == "unlearn: genmu original images: 8/8, 2m01s elapsed, done"
    assert len(lines) == 4
    assert [duration(s) for s in (0, 59.4, 61, 3599, 3720)] == ["0s", "59s", "1m01s", "59m59s", "1h02m"]


@pytest.fixture
def world(pytester):
    JUDGES.register("evallearn-colour", "tests.evallearn_helpers:colour_judge", replace=True)
    DETECTORS.register("colour", "tests.evallearn_helpers:colour_detector", replace=True)
    EXTRACTORS.register("red-channel", "tests.evallearn_helpers:red_channel", replace=True)
    LOADERS.register("recording", "tests.evallearn_helpers:recording_loader", replace=True)
    return evallearn_helpers.write_world(pytester.path)


def test_generation_reports_progress_on_its_own_lines_and_pytests_line_stays_whole(pytester, world):
    manifest, _, model = world
    args = (*RUN, f"--suite={manifest}", f"--model={model}", "--setting=loader=recording", "--batch-size=1")
    result = pytester.runpytest_inprocess(*args, "-k", "asr-ring-a-bell or clip-score", "--no-cache")
    lines = result.stdout.lines
    progress = [i for i, line in enumerate(lines) if "unlearn: evallearn images:" in line]
    assert progress, result.stdout.str()
    for i in progress:
        assert lines[i].startswith("unlearn: evallearn images: "), lines[i]  # never glued to pytest's line
    # The ring-a-bell set (3 prompts, one a batch), then the captions (4).
    texts = [lines[i] for i in progress]
    assert texts[0] == "unlearn: evallearn images: 0/3, starting"
    assert any(t.startswith("unlearn: evallearn images: 1/3, ") and t.endswith(" left") for t in texts)
    assert texts[-1].startswith("unlearn: evallearn images: 4/4, ") and texts[-1].endswith(", done")
    # Every result character sits on a line that starts with pytest's prefix, and no blank line
    # separates a progress line from the result line after it.
    after = lines[progress[-1] + 1]
    assert after.startswith("evallearn ") and after.split()[1][0] in ".FE", after
    results = "".join(line.split()[1] for line in lines if line.startswith("evallearn ") and len(line.split()) > 1)
    assert sorted(results.replace("[100%]", "")) == sorted(".F")


def test_quiet_runs_print_no_progress(pytester, world):
    manifest, _, model = world
    args = (*RUN, f"--suite={manifest}", f"--model={model}", "--setting=loader=recording", "--no-cache")
    result = pytester.runpytest_inprocess(*args, "-k", "asr-ring-a-bell", "-q")
    assert "unlearn: evallearn images" not in result.stdout.str()
    verbose = pytester.runpytest_inprocess(*args, "-k", "asr-ring-a-bell", "-v", "--scorecard=v.json")
    verbose.stdout.fnmatch_lines(
        ["unlearn: evallearn images: 3/3, *done", "evallearn::asr-ring-a-bell[[]<=0.2] FAILED*"]
    )


def test_a_killed_runs_card_reads_interrupted_in_compare(tmp_path, capsys):
    card = {
        "schema": "pytest-unlearn/scorecard/1",
        "status": "complete",
        "passed": True,
        "suite": {"name": "semeval", "version": "2025.1"},
        "checks": [{"id": "a", "value": 0.9, "op": ">=", "threshold": 0.5, "passed": True, "ci95": None}],
        "aggregates": {},
    }
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(card))
    new.write_text(json.dumps({**card, "status": "running", "passed": False, "checks": []}))
    main(["compare", str(old), str(new)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split(None, 2) == ["status", "complete", "interrupted (the run did not finish)"]
