"""Batched model passes give exactly what the official one-prompt-at-a-time loops give."""

from __future__ import annotations

import pytest

from fixtures.official_semeval import official_generate, official_mmlu_letters, official_nll
from pytest_unlearn.engines.causal_lm import (
    document_nll,
    generate_greedy,
    mmlu_predict,
    mmlu_prefixes,
    mmlu_prompts,
    share_prefixes,
)
from pytest_unlearn.mmlu import load_mmlu
from pytest_unlearn.semeval.data import load_mia, load_prompts
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


def test_mmlu_prefix_sharing_gives_the_unshared_letters_and_probabilities(semeval_target):
    model, tokenizer = semeval_target
    data = load_mmlu(SEMEVAL_DATA / "mmlu")
    prompts = mmlu_prompts(tokenizer, data, shots=5)
    texts, prefixes = [p for _, _, p in prompts], mmlu_prefixes(data, prompts)
    plan = share_prefixes(tokenizer, texts, prefixes)
    # One group per subject, every question in one, each split giving exactly its prompt's tokens.
    assert len(plan.groups) == len(data.subjects) and not plan.unshared
    for prefix, members in plan.groups:
        for i in members:
            assert plan.encoded[i] == tokenizer(texts[i]).input_ids
            assert plan.encoded[i][: len(prefix)] == prefix and len(plan.encoded[i]) > len(prefix)
    assert plan.prefix_tokens + plan.suffix_tokens < plan.full_tokens / 2
    whole = mmlu_predict(model, tokenizer, texts, batch_size=8, device="cpu")
    for batch_size in (1, 3, 64):
        shared = mmlu_predict(model, tokenizer, texts, batch_size=batch_size, device="cpu", prefixes=prefixes)
        assert [letter for letter, _ in shared] == [letter for letter, _ in whole]
        gap = max(abs(a - b) for (_, pa), (_, pb) in zip(shared, whole) for a, b in zip(pa, pb))
        assert gap < 1e-5
    assert [letter for letter, _ in whole] == official_mmlu_letters(model, tokenizer, texts)


def test_mmlu_prompts_whose_split_does_not_hold_run_whole(semeval_target):
    model, tokenizer = semeval_target
    data = load_mmlu(SEMEVAL_DATA / "mmlu")
    prompts = mmlu_prompts(tokenizer, data, shots=5)
    texts, prefixes = [p for _, _, p in prompts], mmlu_prefixes(data, prompts)
    # A prefix ending inside the first question's first word is a textual prefix of that prompt
    # only; the others of its subject do not start with it, and a prefix of no prompt is refused.
    first = texts[0]
    cut = len(prefixes[0]) + 3
    broken = [first[:cut] if p == prefixes[0] else p for p in prefixes]
    broken[-1] = "no prompt starts with this"
    plan = share_prefixes(tokenizer, texts, broken)
    strays = [i for i, p in enumerate(prefixes) if p == prefixes[0] and not texts[i].startswith(first[:cut])]
    assert strays and set(strays) | {len(texts) - 1} <= set(plan.unshared)
    assert all(plan.encoded[i][: len(prefix)] == prefix for prefix, members in plan.groups for i in members)
    shared = mmlu_predict(model, tokenizer, texts, batch_size=4, device="cpu", prefixes=broken)
    whole = mmlu_predict(model, tokenizer, texts, batch_size=4, device="cpu")
    assert [letter for letter, _ in shared] == [letter for letter, _ in whole]
    assert max(abs(a - b) for (_, pa), (_, pb) in zip(shared, whole) for a, b in zip(pa, pb)) < 1e-5


def test_finished_rows_leave_the_batch_and_outputs_stay_the_official_loops(semeval_target, monkeypatch):
    import pytest_unlearn.engines.causal_lm as backend

    model, tokenizer = semeval_target
    rows = load_prompts(SEMEVAL_DATA / "forget.jsonl", "forget") + load_prompts(SEMEVAL_DATA / "retain.jsonl", "retain")
    prompts = [r.input for r in rows][1::4]
    monkeypatch.setattr(backend, "CPU_MIN_ROW_SHARE", 0.0)  # one batch of prompts of many lengths
    widths: list[int] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: widths.append(kw["input_ids"].shape[0]), with_kwargs=True)
    try:
        ours = generate_greedy(model, tokenizer, prompts, max_new_tokens=64, batch_size=len(prompts), device="cpu")
    finally:
        hook.remove()
    # One batch, shrinking as rows end: the last steps run only the longest continuations.
    assert widths[0] == len(prompts) and widths[-1] < len(prompts) and widths == sorted(widths, reverse=True)
    assert len(widths) <= 64
    # The same as generate() running every row to the end (which equals the official loop:
    # the test above, whose batches shrink the same way).
    real_eos_ids = backend._eos_ids
    monkeypatch.setattr(backend, "_eos_ids", lambda *_: None)
    assert generate_greedy(model, tokenizer, prompts, max_new_tokens=64, batch_size=len(prompts), device="cpu") == ours
    monkeypatch.setattr(backend, "_eos_ids", real_eos_ids)
    # A generation config with a logits processor leaves decoding to generate() itself.
    monkeypatch.setattr(model.generation_config, "repetition_penalty", 1.3)
    assert backend._eos_ids(model, tokenizer) is None
    monkeypatch.setattr(model.generation_config, "repetition_penalty", 1.0)
    assert backend._eos_ids(model, tokenizer) == {tokenizer.eos_token_id}
