"""The UnlearnCanvas miniature world: its classifiers and answer sets, and a run of the plugin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_unlearn.registry import BUILTIN, SUITES
from tests.conftest import REPO

# A worktree whose editable install maps ``pytest_unlearn.suites`` to another checkout does not
# see this checkout's suite folders: declare them as builtins.py does (the same declaration, so
# a no-op where the folders are found).
for _name in ("unlearncanvas", "unlearncanvas-mini"):
    if _name not in SUITES:
        SUITES.register(
            _name,
            REPO / "suites" / _name / "manifest.toml",
            package=BUILTIN,
            reference=f"pytest_unlearn.suites/{_name}/manifest.toml",
        )


@pytest.fixture(scope="session")
def canvas() -> dict[str, Path]:
    """style-classifier, object-classifier, erased (per-target answer sets), original (one)."""
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from fixtures.worlds import models

    return models("unlearncanvas")


def classifiers(canvas: dict[str, Path]) -> list[str]:
    return [
        f"--setting=style_classifier={canvas['style-classifier']}",
        f"--setting=object_classifier={canvas['object-classifier']}",
    ]


def run(pytester, *args: str, card: str = "card.json"):
    """The real plugin in process on the mini suite; (result, scorecard or None)."""
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=unlearncanvas-mini", f"--scorecard={card}", *args
    )
    path = pytester.path / card
    return result, (json.loads(path.read_text()) if path.is_file() else None)
