"""Losses without the full logits (issue 18): the chunked passes equal today's full-logits ones
(tests/full_logits_reference.py, kept verbatim) and never run the head on more positions than
the budget allows; token-budget batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_unlearn.engines import causal_lm as backend
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
        budget = vocab * 15  # 15 positions per chunk
        ids, mask = backend._left_pad([tokenizer(t).input_ids for t in TEXTS[:3]], tokenizer.pad_token_id, "cpu")
        targets = backend._next_token_targets(ids, mask)
        with torch.no_grad():
            backend.target_logprobs(model, ids, mask, targets, budget=budget)
    finally:
        hook.remove()
    # The head ran on the scored positions only, gathered from all rows (no padding, no prompt),
    # at most 15 at a time; the whole-model forward (every position's logits) was never called.
    assert len(widths) > 1 and all(len(w) == 2 and w[0] <= 15 for w in widths)
    assert sum(w[0] for w in widths) == int((targets != -100).sum())


def test_token_budget_batches(monkeypatch):
    lengths = [100, 10, 10, 10, 90, 10]
    # Rows bounded by batch_size as before without a budget.
    assert backend._batches(lengths, 2) == [[0, 4], [1, 2], [3, 5]]
    # 100 tokens a batch: the long documents go alone, the short ones pack (width x rows <= 100).
    assert backend._batches(lengths, 16, max_tokens=100) == [[0], [4], [1, 2, 3, 5]]
    assert backend._batches(lengths, 3, max_tokens=100) == [[0], [4], [1, 2, 3], [5]]
    # On the CPU a row shorter than CPU_MIN_ROW_SHARE of its batch's longest starts a new one
    # (padded positions cost there as much as real ones); elsewhere rows pack as before.
    monkeypatch.setattr(backend, "CPU_MIN_ROW_SHARE", 0.5)
    rows = [100, 50, 49, 30, 24]
    assert backend._batches(rows, 16, device="cpu") == [[0, 1], [2, 3], [4]]
    assert backend._batches(rows, 2, device="cpu") == [[0, 1], [2, 3], [4]]
    assert backend._batches(rows, 16, device="cuda") == [[0, 1, 2, 3, 4]]
    # A document longer than the budget still gets its own batch (and its own line, elsewhere).
    assert backend._batches([500, 5], 4, max_tokens=100) == [[0], [1]]
    # Attention in the cost (span: where it equals the linear layers): at span 100 a 100-token
    # row costs 150 tokens, an 85-token one 121 (< 0.85 x 150: its own batch), a 90-token 130.5.
    monkeypatch.setattr(backend, "CPU_MIN_ROW_SHARE", 0.85)
    assert backend._batches([100, 90, 85], 16, device="cpu") == [[0, 1, 2]]
    assert backend._batches([100, 90, 85], 16, device="cpu", span=100) == [[0, 1], [2]]
    assert backend._batches([100, 90], 16, max_tokens=260, span=100) == [[0], [1]]  # 2 x 150 > 260
    assert backend.row_cost(100, None) == 100 and backend.row_cost(100, 100) == 150
    # On the CPU a long row runs alone (equal lengths, no padding: it would batch otherwise).
    long = backend.CPU_ALONE_TOKENS + 1
    assert backend._batches([long, long, 8, 8], 16, device="cpu") == [[0], [1], [2, 3]]
    assert backend._batches([long, long], 16, device="cuda") == [[0, 1]]


def test_a_batch_out_of_memory_is_split_and_retried(lm, monkeypatch):
    model, tokenizer = lm
    expected = backend.document_nll(model, tokenizer, TEXTS, batch_size=4, device="cpu")
    real = backend.target_logprobs
    seen = []

    def tight(model, ids, mask, targets, **kw):
        seen.append(ids.shape[0])
        if ids.shape[0] > 1:  # only one row fits
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return real(model, ids, mask, targets, **kw)

    monkeypatch.setattr(backend, "target_logprobs", tight)
    # Texts of many lengths: without this the CPU's padding rule would batch them one by one.
    monkeypatch.setattr(backend, "CPU_MIN_ROW_SHARE", 0.0)
    # "a" is one token: no next-token loss (NaN), as before.
    assert backend.document_nll(model, tokenizer, TEXTS, batch_size=4, device="cpu") == pytest.approx(
        expected, abs=1e-5, nan_ok=True
    )
    assert seen[:3] == [4, 2, 1]  # halved until it fit

    def none_fit(*args, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(backend, "target_logprobs", none_fit)
    with pytest.raises(backend.UnlearnError) as caught:
        backend.document_nll(model, tokenizer, TEXTS[:1], batch_size=4, device="cpu")
    n = len(tokenizer(TEXTS[0]).input_ids)
    assert str(caught.value) == (
        f"a text of {n} tokens does not fit in memory even alone (OutOfMemoryError); pass --dtype bfloat16 "
        "(or float16), a smaller --setting max_batch_tokens, or shorter texts"
    )
    # Any other error is not memory: it is not retried.
    monkeypatch.setattr(backend, "target_logprobs", lambda *a, **k: (_ for _ in ()).throw(ValueError("bug")))
    with pytest.raises(ValueError, match="bug"):
        backend.document_nll(model, tokenizer, TEXTS, batch_size=4, device="cpu")


def test_out_of_memory_fails_its_check_in_one_line_and_keeps_the_others(pytester, semeval_models):
    pytester.makeconftest(
        """
        import torch
        from pytest_unlearn.engines import causal_lm as backend

        real = backend.target_logprobs

        def no_memory(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory")

        def pytest_configure(config):
            backend.target_logprobs = no_memory

        def pytest_unconfigure(config):  # the outer session runs in this process too
            backend.target_logprobs = real
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", "semeval", f"--model={semeval_models['retrained']}", "--no-cache",
        "--max-new-tokens=8", "-k", "mia or task1-knowledge-retain", "--setting=bootstrap_samples=20",
        "--unlearn-partial",
    )  # fmt: skip
    import json

    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    checks = {c["id"]: c for c in card["checks"]}
    # "partial": two checks of the suite, on purpose; the run finished (not "incomplete").
    assert card["status"] == "partial" and checks["task1-knowledge-retain"]["passed"] is True
    assert checks["mia-score"]["error"].startswith("MIA document '")
    assert (
        "tokens) does not fit in memory even alone (OutOfMemoryError); pass --dtype bfloat16"
        in checks["mia-score"]["error"]
    )
    assert "Traceback" not in result.stdout.str()


def test_documents_longer_than_the_context_are_said_and_can_be_cut(pytester, semeval_models, tmp_path):
    import json
    import shutil

    from tests.conftest import SEMEVAL_DATA

    data = tmp_path / "data"
    shutil.copytree(SEMEVAL_DATA, data)
    members = [json.loads(x) for x in (data / "mia" / "member.jsonl").read_text().splitlines()]
    long_text = " ".join(m["document"] for m in members) * 3  # well past 1,024 positions
    members[0]["document"] = long_text
    (data / "mia" / "member.jsonl").write_text("".join(json.dumps(m) + "\n" for m in members))
    model = semeval_models["retrained"]
    args = (
        "--suite",
        "semeval",
        f"--model={model}",
        f"--data={data}",
        "-k",
        "mia",
        "--no-cache",
        "--setting=bootstrap_samples=20",
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    result.stdout.fnmatch_lines(
        ["unlearn: max_batch_tokens=* (from * GiB CPU memory, * B per token), at most --batch-size=16 rows"]
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    n = len(tokenizer(long_text).input_ids)
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert card["warnings"] == [
        f"MIA data: 1 of 36 texts are longer than the model's context (longest {n} tokens, max_position_embeddings "
        "1024): scored whole, positions past it extrapolated as the reference scorer does; --setting "
        "truncate_to_context=true cuts them"
    ]
    assert (
        pytester.runpytest_inprocess("-p", "no:cacheprovider", *args, "--unlearn-strict").ret
        == pytest.ExitCode.TESTS_FAILED
    )
    # Cut to the context: the document's loss is that of its first 1,024 tokens, computed here.
    pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", *args, "--setting=truncate_to_context=true", "--scorecard=cut.json"
    )
    losses = [json.loads(x) for x in (pytester.path / "cut-artifacts" / "mia_losses.jsonl").read_text().splitlines()]
    from pytest_unlearn.loading import load_causal_lm

    lm, tok, _ = load_causal_lm(model, device="cpu", dtype="float32", allow_pickle=False)
    ids = torch.tensor([tok(long_text).input_ids[:1024]])
    with torch.no_grad():
        expected = float(lm(input_ids=ids, labels=ids).loss)
    assert losses[0]["nll"] == pytest.approx(expected, abs=1e-5)


def test_document_nll_is_the_official_labels_loss_to_1e_6(lm):
    """What the SemEval organizers compute per document, ``model(ids, labels=ids).loss``: the
    chunked pass gives it to 1e-6 one row at a time and batched (measured 4.8e-7); the
    full-logits pass of before was further from it (cross-entropy over ``[batch, vocab, length]``
    sums in another order)."""
    model, tokenizer = lm
    scored = [t for t in TEXTS if len(tokenizer(t).input_ids) > 1]  # one token has no target
    with torch.no_grad():
        official = [float(model(ids, labels=ids).loss) for ids in (tokenizer(t, return_tensors="pt").input_ids for t in scored)]  # fmt: skip
    for batch_size in (1, 3):
        got = backend.document_nll(model, tokenizer, scored, batch_size=batch_size, device="cpu")
        np.testing.assert_allclose(got, official, rtol=0, atol=1e-6)


def test_text_first_moves_left_padding_and_refuses_a_gap():
    ids = torch.tensor([[0, 0, 5, 6], [1, 2, 3, 4], [0, 0, 0, 9]])
    mask = (ids != 0).long()
    moved, shift = backend._text_first(ids, mask)
    # Each row's text from column 0; what follows a shorter row's text is never attended to.
    assert moved[1].tolist() == [1, 2, 3, 4] and moved[0, :2].tolist() == [5, 6] and moved[2, 0] == 9
    assert shift.tolist() == [2, 0, 3]
    # A mask with a gap inside a row is not left padding: the masked pass runs instead.
    assert backend._text_first(ids, torch.tensor([[1, 0, 1, 1]] * 3)) is None


def test_multiple_choice_last_position_equals_the_masked_pass(lm):
    from pytest_unlearn.engines import multiple_choice

    model, tokenizer = lm
    ids, mask = backend._left_pad([tokenizer(t).input_ids for t in TEXTS], tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        text_first = multiple_choice._last_logprobs(model, ids, mask)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=backend._position_ids(mask)).logits[:, -1]
    torch.testing.assert_close(text_first, torch.log_softmax(logits.float(), -1), rtol=0, atol=1e-5)
