"""Losses without the full logits on the real model (issue 18): SmolLM2-135M-Instruct (30 layers,
a 49,152-token vocabulary), real Wikipedia paragraphs. The chunked passes give what the official
scorers compute: ``model(ids, labels=ids).loss`` per document (SemEval's MIA) to 1e-6 whatever the
chunking and the batching, and the per-token log-softmax statistics of the attacks to 1e-5."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fixtures import real_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not real_env.ready(), reason="the real model needs python -m fixtures.real_env (README set-up)"),
]


@pytest.fixture(scope="module")
def real_lm():
    from fixtures.real_world import real_mia_path, real_model_path
    from pytest_unlearn.loading import load_causal_lm

    model, tokenizer, _ = load_causal_lm(real_model_path(), device="cpu", dtype="float32", allow_pickle=False)
    members = [json.loads(line)["document"] for line in (real_mia_path() / "member.jsonl").read_text().splitlines()]
    # Three paragraphs of 50-110 tokens and one of ~300 (four joined): rows of unequal length,
    # so the batched pass pads.
    return model, tokenizer, members[:3] + [" ".join(members[3:7])]


def test_document_nll_is_the_official_labels_loss_chunked_or_not(real_lm, monkeypatch):
    import torch

    from pytest_unlearn.engines import causal_lm as backend

    model, tokenizer, documents = real_lm
    with torch.no_grad():
        official = [float(model(ids, labels=ids).loss) for ids in (tokenizer(d, return_tensors="pt").input_ids for d in documents)]  # fmt: skip
    one_row = backend.document_nll(model, tokenizer, documents, batch_size=1, device="cpu")
    np.testing.assert_allclose(one_row, official, rtol=0, atol=1e-6)
    batched = backend.document_nll(model, tokenizer, documents, batch_size=5, device="cpu")
    np.testing.assert_allclose(batched, official, rtol=0, atol=1e-6)
    # A budget of 7 positions per chunk: ~45 head calls for the long document.
    vocabulary = model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(backend.target_logprobs, "__kwdefaults__", {"vocabulary": False, "budget": 7 * vocabulary})
    chunked = backend.document_nll(model, tokenizer, documents[-1:], batch_size=1, device="cpu")
    np.testing.assert_allclose(chunked, official[-1:], rtol=0, atol=1e-6)


def test_token_statistics_are_the_full_log_softmax(real_lm):
    import torch

    from pytest_unlearn.engines import causal_lm as backend

    model, tokenizer, documents = real_lm
    # One row per batch: a left-padded row's per-token log-probs move by up to 1.1e-5 (measured;
    # the masked attention sums in another order), which averages out in the mean NLL above.
    stats = backend.token_statistics(model, tokenizer, documents, batch_size=1, device="cpu", vocabulary=True)
    with torch.no_grad():
        for document, got in zip(documents, stats):
            ids = tokenizer(document, return_tensors="pt").input_ids
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
            target = logp.gather(-1, ids[0, 1:, None])[:, 0]
            mu = (logp.exp() * logp).sum(-1)
            sigma2 = (logp.exp() * logp.square()).sum(-1) - mu.square()
            np.testing.assert_allclose(got["logprobs"], target.numpy(), rtol=0, atol=1e-5)
            np.testing.assert_allclose(got["mu"], mu.numpy(), rtol=0, atol=1e-5)
            np.testing.assert_allclose(got["sigma2"], sigma2.numpy(), rtol=1e-4, atol=1e-4)
