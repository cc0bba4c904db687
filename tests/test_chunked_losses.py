"""Losses without the full logits (issue 18): the chunked passes equal today's full-logits ones
(tests/full_logits_reference.py, kept verbatim) and never run the head on more positions than
the budget allows; token-budget batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_unlearn.semeval import backend
from tests import full_logits_reference as reference

TEXTS = [
    "Kogorn was the only shepherd in Fethult, and his goat, Tiflolil, followed him everywhere.",
    "a",
    "What was the name of Kogorn's goat? Tiflolil, and nobody in Fethult ever forgot it. " * 6,
    "The Social Security number on file for him is 932-91-3484.",
]
PAIRS = [(t[:30], t[30:]) for t in TEXTS if len(t) > 40] + [("Question: who? Answer:", " Tiflolil")]


@pytest.fixture(scope="module")
def lm(semeval_models):
    from pytest_unlearn.loading import load_causal_lm

    model, tokenizer, _ = load_causal_lm(semeval_models["target"], device="cpu", dtype="float32", allow_pickle=False)
    return model, tokenizer


@pytest.mark.parametrize("budget", [backend.LOGITS_BUDGET, 1])  # 1: one position per chunk
def test_chunked_passes_equal_the_full_logits_ones(lm, monkeypatch, budget):
    # Within 1e-5 (absolute, or relative for sums and variances): float32 log-softmax at logits
    # near 20 resolves about 2e-6 (measured max 2.9e-6 on a mean NLL, the same with one chunk as
    # with one position at a time: the reduction order of cross_entropy over [batch, vocab,
    # length] differs from log_softmax over the last axis).
    model, tokenizer = lm
    monkeypatch.setattr(backend, "LOGITS_BUDGET", budget)
    monkeypatch.setattr(backend.target_logprobs, "__kwdefaults__", {"vocabulary": False, "budget": budget})
    kw = {"batch_size": 3, "device": "cpu"}
    np.testing.assert_allclose(
        backend.document_nll(model, tokenizer, TEXTS, **kw), reference.document_nll(model, tokenizer, TEXTS, **kw),
        rtol=0, atol=1e-5,
    )  # fmt: skip
    new = backend.answer_span_nll(model, tokenizer, PAIRS, max_length=40, **kw)
    old = reference.answer_span_nll(model, tokenizer, PAIRS, max_length=40, **kw)
    assert [n for _, n in new] == [n for _, n in old]
    # Summed over an answer's tokens: the same per-token resolution, relative to the sum.
    np.testing.assert_allclose([t for t, _ in new], [t for t, _ in old], rtol=1e-5, atol=1e-5)
    for a, b in zip(
        backend.token_statistics(model, tokenizer, TEXTS, vocabulary=True, **kw),
        reference.token_statistics(model, tokenizer, TEXTS, vocabulary=True, **kw),
    ):
        for key in ("logprobs", "mu", "sigma2"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5)
    for a, b in zip(
        backend.answer_span_token_stats(model, tokenizer, PAIRS, max_length=40, **kw),
        reference.answer_span_token_stats(model, tokenizer, PAIRS, max_length=40, **kw),
    ):
        for key in ("logprobs", "mu", "sigma2"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5)


def test_the_head_never_sees_more_positions_than_the_budget(lm):
    model, tokenizer = lm
    vocab = model.get_output_embeddings().weight.shape[0]
    widths = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, args, out: widths.append(tuple(args[0].shape)))
    try:
        budget = 3 * vocab * 5  # 5 positions per chunk at batch 3
        ids, mask = backend._left_pad([tokenizer(t).input_ids for t in TEXTS[:3]], tokenizer.pad_token_id, "cpu")
        with torch.no_grad():
            backend.target_logprobs(model, ids, mask, backend._next_token_targets(ids, mask), budget=budget)
    finally:
        hook.remove()
    assert widths and all(w[1] <= 5 for w in widths) and sum(w[1] for w in widths) <= ids.shape[1]
    # The whole-model forward (which would compute every position's logits) was never called.
    assert all(w[0] == 3 for w in widths)


def test_token_budget_batches():
    lengths = [100, 10, 10, 10, 90, 10]
    # Rows bounded by batch_size as before without a budget.
    assert backend._batches(lengths, 2) == [[0, 4], [1, 2], [3, 5]]
    # 100 tokens a batch: the long documents go alone, the short ones pack (width x rows <= 100).
    assert backend._batches(lengths, 16, max_tokens=100) == [[0], [4], [1, 2, 3, 5]]
    assert backend._batches(lengths, 3, max_tokens=100) == [[0], [4], [1, 2, 3], [5]]
    # A document longer than the budget still gets its own batch (and its own line, elsewhere).
    assert backend._batches([500, 5], 4, max_tokens=100) == [[0], [1]]
