"""ROUGE-L recall of a generation against its expected text (stemmed), as the SemEval-2025 and
TOFU scorers compute it with Google's ``rouge_score``: shared by the text suites."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:  # building the scorer loads the stemmer: do it once
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(expected: str, generated: str) -> float:
    """ROUGE-L recall of ``generated`` against ``expected`` (stemmed)."""
    return float(_rouge_scorer().score(expected, generated)["rougeL"].recall)
