"""`pytest --help` with the plugin installed: argparse %-formats every option's help text, and a
bare ``%`` in one of them crashed `pytest --help` for every project (issue 26)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_unlearn import plugin
from pytest_unlearn.options import OPTIONS

REPO = Path(__file__).resolve().parent.parent


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_pytest_help_works_with_the_plugin_installed(tmp_path):
    # Outside this repo (tmp_path): the entry point loads the plugin, as in any user's project.
    result = _pytest(tmp_path, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "--baseline-tolerance=VALUE" in result.stdout
    assert "95% interval" in " ".join(result.stdout.split())  # the percent sign survives, once


def test_pytest_help_works_with_the_plugin_disabled(tmp_path):
    result = _pytest(tmp_path, "-p", "no:unlearn", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--baseline-tolerance" not in result.stdout


class _Recorder:
    """Stands in for pytest's parser: records what the plugin passes to addoption/addini."""

    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        self.inis: list[tuple[str, str]] = []

    def getgroup(self, name: str, description: str = "") -> _Recorder:
        return self

    def addoption(self, *flags: str, **kwargs: Any) -> None:
        self.options.append((flags, kwargs))

    def addini(self, name: str, help: str, **kwargs: Any) -> None:  # noqa: A002 (pytest's name)
        self.inis.append((name, help))


def test_every_option_help_formats_the_way_argparse_formats_it():
    recorder = _Recorder()
    plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    assert len(recorder.options) == len(OPTIONS)
    for flags, kwargs in recorder.options:
        parser = argparse.ArgumentParser(prog="pytest", add_help=False)
        parser.add_argument(*flags, **kwargs)
        text = parser.format_help()  # raises on a help string argparse cannot %-format
        spec = next(s for s in OPTIONS if s.flags == flags)
        # What the user reads is the help text itself, not a doubled %% or an expanded %(...)s.
        # (whitespace aside: argparse wraps lines, also after a hyphen)
        assert "".join(spec.help.split()) in "".join(text.split()), flags


@pytest.mark.parametrize("text", ["95% interval", "100%", "%(default)s literally", "%i"])
def test_a_future_help_string_with_a_percent_sign_cannot_break_help(monkeypatch, text):
    patched = [dataclasses.replace(OPTIONS[0], help=text), *OPTIONS[1:]]
    recorder = _Recorder()
    monkeypatch.setattr(plugin, "OPTIONS", patched)
    plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    flags, kwargs = recorder.options[0]
    parser = argparse.ArgumentParser(prog="pytest", add_help=False)
    parser.add_argument(*flags, **kwargs)
    assert text in parser.format_help()
