"""Shared fixtures for the repo's own tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy  # noqa: F401
import pytest
import sklearn.metrics  # noqa: F401

# pytester's in-process runs drop modules first imported inside them, and C extensions cannot
# be imported twice in one process: import what the inner runs use out here, once.
import pytest_unlearn.semeval.evaluation  # noqa: F401
import pytest_unlearn.semeval.metrics  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
SEMEVAL_DATA = REPO / "suites" / "semeval" / "data"


def semeval_rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (SEMEVAL_DATA / f"{split}.jsonl").read_text().splitlines()]


@pytest.fixture
def perfect_unlearning_predictions(tmp_path: Path) -> Path:
    """Predictions of an ideal unlearned model: nothing of the forget set, all of the retain set."""
    rows = [{"id": r["id"], "output": "qqq"} for r in semeval_rows("forget")]
    rows += [{"id": r["id"], "output": r["output"]} for r in semeval_rows("retain")]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
