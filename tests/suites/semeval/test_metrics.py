"""SemEval metric functions against values computed by hand or taken from the task paper."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from pytest_unlearn.mmlu import MMLUQuestion, build_prompt
from pytest_unlearn.semeval import metrics as sm


def test_rouge_l_recall_counts_the_longest_common_subsequence():
    # LCS of "the cat sat on the mat" and "the cat on mat" is "the cat on mat": 4 of 6 tokens.
    assert sm.regurgitation_score("the cat sat on the mat", "the cat on mat") == pytest.approx(4 / 6)


def test_rouge_l_recall_uses_the_porter_stemmer():
    # Stems: [run, dog] against [the, dog, run]: the LCS has one token, recall 1/2.
    assert sm.regurgitation_score("running dogs", "the dog runs") == pytest.approx(0.5)


def test_rouge_l_recall_is_recall_not_precision():
    # Everything expected is there, plus extra words: recall stays 1.
    assert sm.regurgitation_score("red apple", "a red apple and a pear") == 1.0


def test_knowledge_score_is_strict_equality_after_strip_and_lower():
    assert sm.knowledge_score(" Paris ", "paris") == 1.0
    assert sm.knowledge_score("Paris", "Paris is the capital") == 0.0  # no containment
    assert sm.knowledge_score("Paris", "Paris.") == 0.0


def test_task_aggregate_is_the_harmonic_mean_and_zero_with_any_zero():
    assert sm.task_aggregate([0.5, 1.0]) == pytest.approx(2 / (1 / 0.5 + 1 / 1.0))
    assert sm.task_aggregate([0.9, 0.0, 0.8]) == 0.0


def test_mia_auc_by_hand():
    # score = -nll: members (-1, -2), non-members (-1.5, -3). Member beats non-member in 3 of 4
    # pairs, so AUC = 0.75 and the MIA score is 1 - 2 * 0.25 = 0.5.
    auc = sm.mia_auc([1.0, 2.0], [1.5, 3.0])
    assert auc == pytest.approx(0.75)
    assert sm.mia_score(auc) == pytest.approx(0.5)


def test_mia_auc_counts_ties_as_half():
    assert sm.mia_auc([1.0, 2.0], [1.0, 2.0]) == pytest.approx(0.5)
    assert sm.mia_score(0.5) == 1.0


def test_task_aggregate_and_final_score_reproduce_ails_ntua_in_the_semeval_paper():
    # SemEval-2025 Task 4 paper, AILS-NTUA (7B): forget terms (already 1 - v) and retain terms.
    forget_terms = [0.963, 0.986, 0.979, 0.966, 0.998, 0.951]
    retain_terms = [0.493, 0.995, 0.556, 0.758, 0.990, 0.844]
    aggregate = sm.task_aggregate(forget_terms + retain_terms)
    assert round(aggregate, 3) == 0.827
    assert round(sm.final_score(aggregate, 0.847, 0.443), 3) == 0.706


def test_inputs_invert_forget_means_before_the_harmonic_mean():
    # The same paper figures, fed as raw per-group means: forget groups hold 1 - term.
    forget_terms = [0.963, 0.986, 0.979, 0.966, 0.998, 0.951]
    retain_terms = [0.493, 0.995, 0.556, 0.758, 0.990, 0.844]
    keys = [(t, k) for t in ("Task1", "Task2", "Task3") for k in ("regurgitation", "knowledge")]
    text = {("forget", t, k): np.array([1 - v]) for (t, k), v in zip(keys, forget_terms)}
    text |= {("retain", t, k): np.array([v]) for (t, k), v in zip(keys, retain_terms)}
    inputs = sm.SemevalInputs(text=text)
    assert round(sm.task_aggregate_metric(inputs).value, 3) == 0.827
    forget_task1 = sm.subtask(inputs, split="forget", task="Task1", kind="regurgitation")
    assert forget_task1.value == pytest.approx(0.963)
    assert forget_task1.details["raw_mean"] == pytest.approx(0.037)


def test_final_score_metric_combines_the_three_parts():
    text = {("retain", "Task1", "knowledge"): np.array([1.0, 0.0])}  # aggregate 0.5
    inputs = sm.SemevalInputs(
        text=text,
        member_nll=np.array([1.0, 2.0]),
        nonmember_nll=np.array([1.5, 3.0]),  # AUC 0.75 -> MIA score 0.5
        mmlu_correct=np.array([1.0, 1.0, 0.0, 1.0]),  # 0.75
    )
    measured = sm.final_score_metric(inputs)
    assert measured.value == pytest.approx(statistics.mean([0.5, 0.5, 0.75]))
    assert measured.n == 2 + 4 + 4


def test_resample_keeps_group_sizes_and_is_seeded():
    inputs = sm.SemevalInputs(
        text={("forget", "Task1", "knowledge"): np.array([0.0, 1.0, 1.0])},
        member_nll=np.array([1.0, 2.0]),
        nonmember_nll=np.array([3.0]),
    )
    a = inputs.resample(np.random.default_rng(3), ("text", "mia"))
    b = inputs.resample(np.random.default_rng(3), ("text", "mia"))
    assert a.text[("forget", "Task1", "knowledge")].size == 3
    assert a.member_nll.size == 2 and a.nonmember_nll.size == 1
    np.testing.assert_array_equal(a.text[("forget", "Task1", "knowledge")], b.text[("forget", "Task1", "knowledge")])


def test_mmlu_prompt_matches_the_official_layout():
    shot = MMLUQuestion("high_school_biology", "What do plants need?", ("Light", "Salt", "Sand", "Iron"), "A")
    question = MMLUQuestion("high_school_biology", "What do fish use?", ("Gills", "Lungs", "Wings", "Legs"), "A")
    expected = (
        # format_subject prefixes each word with a space: two spaces after "about".
        "The following are multiple choice questions (with answers) about  high school biology.\n\n"
        "What do plants need?\nA. Light\nB. Salt\nC. Sand\nD. Iron\nAnswer: A\n\n"
        "What do fish use?\nA. Gills\nB. Lungs\nC. Wings\nD. Legs\nAnswer:"
    )
    assert build_prompt([shot], "high_school_biology", question, shots=5) == expected
    assert build_prompt([shot], "high_school_biology", question, shots=0).endswith(
        "biology.\n\nWhat do fish use?\nA. Gills\nB. Lungs\nC. Wings\nD. Legs\nAnswer:"
    )


def test_resample_draws_only_required_fields_so_intervals_ignore_other_inputs():
    text = {("forget", "Task1", "knowledge"): np.array([0.0, 1.0, 1.0, 0.0, 1.0])}
    text_only = sm.SemevalInputs(text=text)
    with_mia = sm.SemevalInputs(text=text, member_nll=np.array([1.0, 2.0]), nonmember_nll=np.array([3.0]))
    a = text_only.resample(np.random.default_rng(0), ("text",))
    b = with_mia.resample(np.random.default_rng(0), ("text",))
    np.testing.assert_array_equal(a.text[("forget", "Task1", "knowledge")], b.text[("forget", "Task1", "knowledge")])
    assert b.member_nll is with_mia.member_nll  # not drawn
