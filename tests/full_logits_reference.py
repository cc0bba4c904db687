"""Today's full-logits loss passes, kept verbatim from ``pytest_unlearn/semeval/backend.py`` before
they were chunked along the sequence (issue 18): the reference the chunked ones must equal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pytest_unlearn.engines.causal_lm import Progress, _batches, _left_pad, _position_ids, answer_span_encoding


@torch.no_grad()
def document_nll(
    model: Any,
    tokenizer: Any,
    documents: Sequence[str],
    *,
    batch_size: int,
    device: str,
    progress: Progress | None = None,
) -> list[float]:
    """Mean next-token NLL of each whole document (``model(ids, labels=ids).loss`` per document)."""
    encoded = [tokenizer(d).input_ids for d in documents]
    losses = [float("nan")] * len(documents)
    for batch in _batches([len(e) for e in encoded], batch_size):
        ids, mask = _left_pad([encoded[i] for i in batch], tokenizer.pad_token_id, device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask)).logits
        logits = logits[:, :-1].float()
        targets = ids[:, 1:]
        # A target counts when it and the token predicting it are both real (not padding).
        valid = (mask[:, 1:] * mask[:, :-1]).float()
        token_nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        per_doc = (token_nll * valid).sum(-1) / valid.sum(-1)
        for index, value in zip(batch, per_doc.tolist()):
            losses[index] = value
        if progress:
            progress(len(batch))
    return losses


@torch.no_grad()
def answer_span_nll(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    max_length: int,
    batch_size: int,
    device: str,
    progress: Progress | None = None,
) -> list[tuple[float, int]]:
    """(summed NLL, token count) of each answer given its prompt: TOFU's ``get_batch_loss``
    over the answer tokens (and the end-of-sequence token after them), batched with left padding."""
    eos = tokenizer.eos_token_id
    encoded = [answer_span_encoding(tokenizer, p, a, max_length) for p, a in pairs]
    results: list[tuple[float, int]] = [(float("nan"), 0)] * len(pairs)
    for batch in _batches([len(ids) for ids, _ in encoded], batch_size):
        rows = [encoded[i] for i in batch]
        ids, mask = _left_pad([r[0] for r in rows], tokenizer.pad_token_id, device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask)).logits.float()
        width = ids.shape[1]
        targets = torch.full((len(rows), width), -100, dtype=torch.long)
        for row, (seq, n_prompt) in enumerate(rows):
            labels = seq + ([eos] if len(seq) < max_length else [])
            offset = width - len(seq)
            # Position j of the text predicts label j + 1; the prompt's labels are not scored.
            for j in range(len(seq)):
                if j + 1 < len(labels) and j + 1 >= n_prompt:
                    targets[row, offset + j] = labels[j + 1]
        targets = targets.to(logits.device)
        token_nll = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), targets, reduction="none", ignore_index=-100
        )
        counts = (targets != -100).sum(-1)
        for index, total, count in zip(batch, token_nll.sum(-1).tolist(), counts.tolist()):
            results[index] = (total, int(count))
        if progress:
            progress(len(batch))
    return results


@torch.no_grad()
def token_statistics(
    model: Any,
    tokenizer: Any,
    documents: Sequence[str],
    *,
    batch_size: int,
    device: str,
    vocabulary: bool = False,
    progress: Progress | None = None,
) -> list[dict[str, list[float]]]:
    """Per document, the log-prob of every token given its prefix (the targets
    :func:`document_nll` averages); with ``vocabulary`` also the mean and variance of log p
    under the full next-token distribution at each position (Min-K%++)."""
    encoded = [tokenizer(d).input_ids for d in documents]
    out: list[dict[str, list[float]]] = [{} for _ in documents]
    for batch in _batches([len(e) for e in encoded], batch_size):
        ids, mask = _left_pad([encoded[i] for i in batch], tokenizer.pad_token_id, device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask)).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        target = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        valid = (mask[:, 1:] * mask[:, :-1]).bool()
        if vocabulary:
            p = logp.exp()
            mu = (p * logp).sum(-1)
            sigma2 = (p * logp.square()).sum(-1) - mu.square()
        for row, index in enumerate(batch):
            keep = valid[row]
            stats = {"logprobs": target[row][keep].tolist()}
            if vocabulary:
                stats["mu"] = mu[row][keep].tolist()
                stats["sigma2"] = sigma2[row][keep].tolist()
            out[index] = stats
        if progress:
            progress(len(batch))
    return out


@torch.no_grad()
def answer_span_token_stats(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    max_length: int,
    batch_size: int,
    device: str,
    progress: Progress | None = None,
) -> list[dict[str, list[float]]]:
    """Per (prompt, answer), the log-prob of each answer token and mean and variance of log p
    under the full next-token distribution there, for membership-inference attacks. The labels
    are :func:`answer_span_nll`'s without the end-of-sequence one (open-unlearning's
    ``tokenwise_logprobs`` drops it)."""
    encoded = [answer_span_encoding(tokenizer, p, a, max_length) for p, a in pairs]
    out: list[dict[str, list[float]]] = [{} for _ in pairs]
    for batch in _batches([len(ids) for ids, _ in encoded], batch_size):
        rows = [encoded[i] for i in batch]
        ids, mask = _left_pad([r[0] for r in rows], tokenizer.pad_token_id, device)
        logp = torch.log_softmax(
            model(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask)).logits[:, :-1].float(), dim=-1
        )
        target = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        p = logp.exp()
        mu = (p * logp).sum(-1)
        sigma2 = (p * logp.square()).sum(-1) - mu.square()
        width = ids.shape[1]
        for row, (index, (seq, n_prompt)) in enumerate(zip(batch, rows)):
            # Position j (of the unpadded text) predicts token j + 1; answer tokens are j + 1 >= n_prompt.
            start = width - len(seq) + max(n_prompt - 1, 0)
            keep = slice(start, width - 1)
            out[index] = {
                "logprobs": target[row, keep].tolist(),
                "mu": mu[row, keep].tolist(),
                "sigma2": sigma2[row, keep].tolist(),
            }
        if progress:
            progress(len(batch))
    return out
