"""Multiple-choice accuracy as lm-evaluation-harness computes it, and the MMLU utility gates.

- ``acc`` (lm-eval's ``multiple_choice`` metric): a question is right when the argmax of the
  log-likelihoods of its continuations (" A" .. " D") is the answer's index (``np.argmax``: the
  first of tied maxima), averaged over the subset's questions.
- MMLU: ``acc`` over every test question (lm-eval's ``mmlu`` group: ``weight_by_size``, i.e. the
  micro average), and its ratio to the original model's on the same questions.

Pure numpy; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.registry import Measurement, metric, ratio_to_reference
from pytest_unlearn.stats import resample


def predict(loglikelihoods: Sequence[float]) -> int:
    """lm-eval's ``pred = np.argmax(lls)``: the index of the most likely choice (first on ties)."""
    return int(np.argmax(np.asarray(loglikelihoods, dtype=float)))


def correct(tables: Sequence[Sequence[float]], answers: Sequence[int]) -> np.ndarray:
    """1.0 for each question whose prediction is its answer, else 0.0 (lm-eval's per-doc ``acc``)."""
    return np.array([float(predict(lls) == gold) for lls, gold in zip(tables, answers)], dtype=float)


@dataclass(frozen=True)
class MCQInputs:
    """Per-question 0/1 outcomes every metric is computed from: ``correct`` per subset of the
    model, and the MMLU outcomes of the model and of ``--original-model`` (same questions, same
    order). A field is ``None`` until the backend computes it."""

    correct: dict[str, np.ndarray] | None = None
    mmlu_correct: np.ndarray | None = None
    original_mmlu_correct: np.ndarray | None = None

    def resample(self, rng: np.random.Generator, requires: tuple[str, ...]) -> MCQInputs:
        """A bootstrap replicate of the inputs a metric needs: each subset resampled on its own;
        the two MMLU outcome vectors with the *same* draw (a paired bootstrap of the ratio)."""
        changes: dict[str, object] = {}
        if "subsets" in requires and self.correct is not None:
            changes["correct"] = {k: resample(v, rng) for k, v in self.correct.items()}
        if "original_mmlu" in requires and self.mmlu_correct is not None and self.original_mmlu_correct is not None:
            draw = rng.integers(0, self.mmlu_correct.size, size=self.mmlu_correct.size)
            changes["mmlu_correct"] = self.mmlu_correct[draw]
            changes["original_mmlu_correct"] = self.original_mmlu_correct[draw]
        elif "mmlu" in requires and self.mmlu_correct is not None:
            changes["mmlu_correct"] = resample(self.mmlu_correct, rng)
        return replace(self, **changes)

    def subset(self, name: str) -> np.ndarray:
        if self.correct is None:
            raise UnlearnError("internal: the subsets' predictions were not computed")
        if name not in self.correct:
            raise UnlearnError(f"subset {name!r} has no questions in this run")
        return self.correct[name]

    def mmlu(self) -> np.ndarray:
        if self.mmlu_correct is None:
            raise UnlearnError("internal: MMLU predictions were not computed")
        return self.mmlu_correct


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


@metric(
    "mcq.accuracy",
    higher_is_better=False,
    unit="accuracy",
    requires=("subsets",),
    description="lm-eval's acc on one subset: share of questions whose most likely choice is the answer.",
)
def accuracy_metric(inputs: MCQInputs, *, subset: str) -> Measurement:
    """Zero-shot ``acc`` of one subset (lm-eval ``wmdp_bio`` & co.): argmax of the choices' log-likelihoods."""
    values = inputs.subset(subset)
    return Measurement(_mean(values), int(values.size), {"correct": int(values.sum())})


@metric(
    "mcq.mmlu_accuracy",
    higher_is_better=True,
    unit="accuracy",
    requires=("mmlu",),
    description="lm-eval's MMLU acc, micro-averaged over every test question (the group's weight_by_size).",
)
def mmlu_accuracy_metric(inputs: MCQInputs) -> Measurement:
    """MMLU ``acc`` in lm-eval's form (``mmlu/default``), the ``mmlu`` group's size-weighted mean."""
    values = inputs.mmlu()
    return Measurement(_mean(values), int(values.size), {"correct": int(values.sum())})


@metric(
    "mcq.mmlu_ratio",
    higher_is_better=True,
    unit="ratio",
    requires=("mmlu", "original_mmlu"),
    description="The model's MMLU acc divided by --original-model's on the same questions.",
)
def mmlu_ratio_metric(inputs: MCQInputs) -> Measurement:
    """MMLU kept: acc(model) / acc(original), both lm-eval's MMLU acc on the same questions."""
    if inputs.original_mmlu_correct is None:
        raise UnlearnError("the MMLU ratio needs the original model: pass --original-model PATH")
    model, original = _mean(inputs.mmlu()), _mean(inputs.original_mmlu_correct)
    return ratio_to_reference(model, original, int(inputs.mmlu().size), {"mmlu": model, "original_mmlu": original})


def aggregates(inputs: MCQInputs) -> dict[str, float | int | None]:
    """Per-subset accuracy, their micro average (``all``), MMLU of the model and the original."""
    out: dict[str, float | int | None] = {}
    if inputs.correct is not None:
        for name, values in inputs.correct.items():
            out[f"{name}_accuracy"] = _mean(values)
        every = np.concatenate(list(inputs.correct.values())) if inputs.correct else np.array([])
        out["all_accuracy"] = _mean(every)
    if inputs.mmlu_correct is not None:
        out["mmlu"] = _mean(inputs.mmlu_correct)
    if inputs.original_mmlu_correct is not None:
        out["original_mmlu"] = _mean(inputs.original_mmlu_correct)
        if inputs.mmlu_correct is not None and out["original_mmlu"]:
            out["mmlu_ratio"] = out["mmlu"] / out["original_mmlu"]  # type: ignore[operator]
    return out
