"""Batched model passes give exactly what the official one-prompt-at-a-time loops give."""

from __future__ import annotations

import pytest

from fixtures.official_semeval import official_generate, official_mmlu_letters, official_nll
from pytest_unlearn.semeval.backend import document_nll, generate_greedy, mmlu_predict, mmlu_prompts
from pytest_unlearn.semeval.data import load_mia, load_prompts
from pytest_unlearn.semeval.mmlu import load_mmlu
from tests.conftest import SEMEVAL_DATA

pytestmark = pytest.mark.slow


def test_batched_greedy_generation_equals_the_official_loop_in_float32(semeval_target):
    model, tokenizer = semeval_target
    rows = load_prompts(SEMEVAL_DATA / "forget.jsonl", "forget") + load_prompts(SEMEVAL_DATA / "retain.jsonl", "retain")
    prompts = [r.input for r in rows][::3]  # every kind, task and split, prompts of many lengths
    official = official_generate(model, tokenizer, prompts, max_new_tokens=48)
    for batch_size in (1, 7, 64):
        assert (
            generate_greedy(model, tokenizer, prompts, max_new_tokens=48, batch_size=batch_size, device="cpu")
            == official
        )
    # The target memorized its data, so these are real continuations, not empty strings.
    assert sum(bool(o.strip()) for o in official) == len(official)


def test_batched_document_nll_equals_the_official_loss(semeval_target):
    model, tokenizer = semeval_target
    members, nonmembers = load_mia(SEMEVAL_DATA / "mia")
    documents = [d.document for d in members[:6] + nonmembers[:6]]
    official = official_nll(model, tokenizer, documents)
    batched = document_nll(model, tokenizer, documents, batch_size=5, device="cpu")
    assert batched == pytest.approx(official, abs=1e-5)


def test_batched_mmlu_predictions_equal_the_official_loop(semeval_target):
    model, tokenizer = semeval_target
    prompts = [p for _, _, p in mmlu_prompts(tokenizer, load_mmlu(SEMEVAL_DATA / "mmlu"), shots=5)]
    official = official_mmlu_letters(model, tokenizer, prompts)
    batched = [letter for letter, _ in mmlu_predict(model, tokenizer, prompts, batch_size=8, device="cpu")]
    assert batched == official
