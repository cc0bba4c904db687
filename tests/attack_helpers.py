"""Shared by the tests/test_attack_*.py modules: run the real plugin over the committed data and
read what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import semeval_rows

#: The 16 checks of the semeval manifest, in order (what every semeval run is gated on).
SEMEVAL_CHECKS = [
    "task1-regurgitation-forget", "task1-knowledge-forget", "task2-regurgitation-forget", "task2-knowledge-forget",
    "task3-regurgitation-forget", "task3-knowledge-forget", "task1-regurgitation-retain", "task1-knowledge-retain",
    "task2-regurgitation-retain", "task2-knowledge-retain", "task3-regurgitation-retain", "task3-knowledge-retain",
    "task-aggregate", "mia-score", "mmlu", "final-score",
]  # fmt: skip
#: What --predictions alone can score (the model checks need the weights).
TEXT = "not mia and not mmlu and not final"
TEXT_CHECKS = SEMEVAL_CHECKS[:13]


def run(pytester: pytest.Pytester, *args: str, cacheprovider: bool = False) -> pytest.RunResult:
    """The plugin, in process; a short bootstrap (verdicts do not depend on it)."""
    plugins = () if cacheprovider else ("-p", "no:cacheprovider")
    return pytester.runpytest_inprocess(*plugins, "--setting=bootstrap_samples=20", *args, no_reraise_ctrlc=True)


def card(pytester: pytest.Pytester, name: str = "unlearn-scorecard.json") -> dict:
    return json.loads((pytester.path / name).read_text())


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def leaky_predictions(path: Path) -> Path:
    """A model that still answers the forget set: every forget check fails, the retain ones pass."""
    rows = [{"id": r["id"], "output": r["output"]} for split in ("forget", "retain") for r in semeval_rows(split)]
    return write_jsonl(path, rows)


def error_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines + result.errlines if line.startswith("ERROR")]
