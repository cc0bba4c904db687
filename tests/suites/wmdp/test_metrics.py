"""lm-eval's multiple-choice acc and the MMLU gates, against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_unlearn.mcq import metrics as mm

# Log-likelihoods of " A" .. " D" for five questions, and their answers (indices).
TABLE = [
    [-0.1, -2.3, -3.0, -4.2],  # argmax A (0); answer 0: right
    [-1.9, -0.4, -2.2, -2.5],  # argmax B (1); answer 2: wrong
    [-5.0, -5.0, -1.0, -0.2],  # argmax D (3); answer 3: right
    [-1.2, -1.2, -3.0, -3.0],  # tie of A and B: np.argmax takes the first, A; answer 1: wrong
    [-2.0, -2.1, -2.2, -1.99],  # argmax D (3) by 0.01; answer 0: wrong
]
ANSWERS = [0, 2, 3, 1, 0]


def test_predictions_and_accuracy_by_hand():
    assert [mm.predict(row) for row in TABLE] == [0, 1, 3, 0, 3]
    assert mm.correct(TABLE, ANSWERS).tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    inputs = mm.MCQInputs(correct={"bio": mm.correct(TABLE, ANSWERS), "cyber": mm.correct(TABLE[:2], [1, 1])})
    bio = mm.accuracy_metric(inputs, subset="bio")
    assert (bio.value, bio.n, bio.details) == (0.4, 5, {"correct": 2})  # 2 of 5
    cyber = mm.accuracy_metric(inputs, subset="cyber")
    assert (cyber.value, cyber.n) == (0.5, 2)  # question 2 (B) right, question 1 (A) wrong
    # The aggregate over subsets is the micro average: (2 + 1) / (5 + 2).
    assert mm.aggregates(inputs)["all_accuracy"] == pytest.approx(3 / 7)


def test_mmlu_is_the_micro_average_and_the_ratio_divides_by_the_original():
    # Subject a: 1 of 1 right, subject b: 1 of 3 right. lm-eval's mmlu group weights by size:
    # 2 / 4 = 0.5 (the unweighted mean of subjects would be (1 + 1/3) / 2 = 0.667).
    model = np.array([1.0, 1.0, 0.0, 0.0])
    original = np.array([1.0, 1.0, 1.0, 0.0])
    inputs = mm.MCQInputs(mmlu_correct=model, original_mmlu_correct=original)
    assert mm.mmlu_accuracy_metric(inputs).value == 0.5
    ratio = mm.mmlu_ratio_metric(inputs)
    assert ratio.value == pytest.approx(0.5 / 0.75) and ratio.details == {"mmlu": 0.5, "original_mmlu": 0.75}
    assert mm.aggregates(inputs) == {"mmlu": 0.5, "original_mmlu": 0.75, "mmlu_ratio": pytest.approx(2 / 3)}


def test_the_ratio_bootstrap_is_paired():
    # The same questions are drawn for both models: identical outcome vectors give ratio 1 in
    # every replicate (an unpaired draw would scatter it).
    same = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    inputs = mm.MCQInputs(mmlu_correct=same, original_mmlu_correct=same.copy())
    rng = np.random.default_rng(0)
    for _ in range(50):
        replicate = inputs.resample(rng, mm.mmlu_ratio_metric.requires)
        assert np.array_equal(replicate.mmlu_correct, replicate.original_mmlu_correct)
    # A subset replicate resamples only what the metric requires.
    inputs = mm.MCQInputs(correct={"bio": same}, mmlu_correct=same)
    replicate = inputs.resample(np.random.default_rng(1), ("subsets",))
    assert replicate.mmlu_correct is same and replicate.correct["bio"] is not same


def test_a_missing_original_is_a_clear_error():
    from pytest_unlearn.errors import UnlearnError

    with pytest.raises(UnlearnError, match="pass --original-model PATH"):
        mm.mmlu_ratio_metric(mm.MCQInputs(mmlu_correct=np.array([1.0])))
