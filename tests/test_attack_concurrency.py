"""concurrency and outputs: two runs aimed at one --scorecard, the HTML report written in place, folders, symlink loops and oversized files given as file paths: one run owns its outputs, each input problem is its own line."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.attack_helpers import card, run
from tests.conftest import REPO, SEMEVAL_DATA
from tests.test_bad_input import usage_error

BLOCKING_CONFTEST = """
import os, pathlib, time

def pytest_runtest_call(item):
    pathlib.Path("started").write_text(str(os.getpid()))
    while not pathlib.Path("go").exists():
        time.sleep(0.05)
"""


def test_a_second_run_on_the_same_scorecard_is_refused(pytester, perfect_unlearning_predictions):
    pytester.makeconftest(BLOCKING_CONFTEST)
    args = ["--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "-k", "task1-knowledge-forget",
            "--unlearn-partial", "-p", "no:cacheprovider", "--setting=bootstrap_samples=20"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO))
    first = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240
        while not (pytester.path / "started").exists():
            assert first.poll() is None, first.stdout.read().decode()
            assert time.monotonic() < deadline, "the first run never started its check"
            time.sleep(0.1)
        # The first run is inside its check, holding the scorecard: the second is refused.
        line = usage_error(pytester, *args)
        assert line == (
            f"ERROR: --scorecard unlearn-scorecard.json: another run (pid {first.pid} on {socket.gethostname()}) is "
            "writing it; wait for it to finish or pass another --scorecard"
        )
        assert card(pytester)["status"] == "running"  # the refused run did not touch it
        (pytester.path / "go").write_text("")
        output = first.communicate(timeout=240)[0].decode()
    finally:
        (pytester.path / "go").write_text("")
        first.kill() if first.poll() is None else None
    assert first.returncode == 0, output
    assert card(pytester)["status"] == "partial" and [c["id"] for c in card(pytester)["checks"]] == [
        "task1-knowledge-forget"
    ]
    # Released at the end: the lock file is gone and the next run may write the card.
    assert not (pytester.path / ".unlearn-scorecard.json.lock").exists()
    (pytester.path / "conftest.py").unlink()
    assert run(pytester, *args).ret == pytest.ExitCode.OK


def test_html_report_is_replaced_not_written_in_place(pytester, perfect_unlearning_predictions):
    page = pytester.path / "unlearn-scorecard.html"
    page.write_text("the previous run's page")
    os.link(page, pytester.path / "reader.html")  # what a reader holding the old file sees
    result = run(
        pytester,
        "--suite=semeval",
        f"--predictions={perfect_unlearning_predictions}",
        "-k",
        "task2",
        "--unlearn-partial",
    )
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "reader.html").read_text() == "the previous run's page"
    assert page.read_text().startswith("<!DOCTYPE html>") or "<html" in page.read_text()
    assert card(pytester)["artifacts"]["report"] == str(page.relative_to(pytester.path))
    assert not [p for p in pytester.path.iterdir() if p.name.endswith(".tmp")]


def folder(tmp_path: Path) -> Path:
    path = tmp_path / "a-folder"
    path.mkdir()
    return path


def loop(tmp_path: Path) -> Path:
    path = tmp_path / "loop.jsonl"
    os.symlink(path, path)
    return path


LOOP = "is a symlink loop (a link that points back to itself); point it at a real file"


@pytest.mark.parametrize(
    ("flag", "make", "tail"),
    [
        ("--predictions", folder, "is a folder, not a file; pass the file inside it"),
        ("--predictions", loop, LOOP),
        ("--scorecard", folder, "is a folder, not a file; pass a file path"),
        ("--scorecard", loop, LOOP),
        ("--baseline", folder, "is a folder, not a file; pass the file inside it"),
        ("--baseline", loop, LOOP),
        ("--data", loop, LOOP),
    ],
)
def test_a_folder_or_a_symlink_loop_given_as_a_path(
    pytester, tmp_path, perfect_unlearning_predictions, flag, make, tail
):
    path = make(tmp_path)
    args = ["--suite=semeval", f"{flag}={path}"]
    if flag != "--predictions":
        args.append(f"--predictions={perfect_unlearning_predictions}")
    assert usage_error(pytester, *args) == f"ERROR: {flag} {path}: {tail}"


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)  # no disk used, and never read: the cap is checked first
    return path


def test_a_huge_predictions_file_is_refused_before_it_is_read(pytester, tmp_path):
    """The issue's case: a 2 GB sparse file reached 4.2 GB of memory."""
    huge = sparse(tmp_path / "huge.jsonl", 2 << 30)
    assert usage_error(pytester, "--suite=semeval", f"--predictions={huge}") == (
        f"ERROR: --predictions {huge}: is 2048 MiB, over the 1024 MiB input cap; raise it with "
        "--unlearn-max-input-mib N (or PYTEST_UNLEARN_MAX_INPUT_MIB) if the file is really that large"
    )


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_cap_applies_to_data_files_and_can_be_set(
    pytester, tmp_path, perfect_unlearning_predictions, monkeypatch, how
):
    data = tmp_path / "data"
    shutil.copytree(SEMEVAL_DATA, data)
    forget = data / "forget.jsonl"
    forget.write_bytes(forget.read_bytes() + b"\n" * (2 << 20))
    args = ["--suite=semeval", f"--data={data}", f"--predictions={perfect_unlearning_predictions}"]
    if how == "flag":
        args.append("--unlearn-max-input-mib=1")
    else:
        monkeypatch.setenv("PYTEST_UNLEARN_MAX_INPUT_MIB", "1")
    assert usage_error(pytester, *args) == (
        f"ERROR: {forget}: is 2 MiB, over the 1 MiB input cap; raise it with --unlearn-max-input-mib N (or "
        "PYTEST_UNLEARN_MAX_INPUT_MIB) if the file is really that large"
    )
    # Raised, the same file is read (blank lines are skipped) and the run goes on.
    args[-1:] = [] if how == "flag" else args[-1:]
    monkeypatch.setenv("PYTEST_UNLEARN_MAX_INPUT_MIB", "8")
    assert run(pytester, *args, "-k", "task1", "--unlearn-partial").ret == pytest.ExitCode.OK
