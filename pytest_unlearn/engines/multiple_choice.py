"""Log-likelihoods of multiple-choice continuations, as lm-evaluation-harness' HF model computes them.

``HFLM._encode_pair``: trailing spaces of the context move to the continuation; the
continuation's tokens are ``encode(context + continuation)[len(encode(context)):]``, both
without special tokens (lm-eval's default for causal LMs: no BOS); the log-likelihood is the
sum of log p over the continuation's tokens given ``context_enc + continuation_enc``.
We batch with left padding and explicit position ids (the semeval backend's machinery); when
every continuation is one token (" A" .. " D" in every usual tokenizer) a question costs one
pass over its context, read at the last position. Imported only when a model pass is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pytest_unlearn.engines.causal_lm import (
    Progress,
    _head_and_body,
    _left_pad,
    _position_ids,
    each_batch,
    target_logprobs,
)


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) exactly as lm-eval's ``HFLM._encode_pair``."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    context_enc = tokenizer.encode(context, add_special_tokens=False)
    if not context_enc:
        # lm-eval scores a continuation of an empty context after the end-of-text token.
        return [tokenizer.eos_token_id], tokenizer.encode(continuation, add_special_tokens=False)
    return context_enc, whole[len(context_enc) :]


def _last_logprobs(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p of the next token after each (left-padded) row, the head run on the last position only."""
    split = _head_and_body(model)
    if split is not None:
        body, head = split
        hidden = body(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask)).last_hidden_state
        logits = head(hidden[:, -1])
    else:
        logits = model(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask)).logits[:, -1]
    return torch.log_softmax(logits.float(), dim=-1)


@torch.no_grad()
def choice_loglikelihoods(
    model: Any,
    tokenizer: Any,
    contexts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int,
    device: str,
    max_tokens: int | None = None,
    progress: Progress | None = None,
) -> list[list[float]]:
    """For each context, the log-likelihood of every continuation (lm-eval's ``loglikelihood``)."""
    pairs = [[encode_pair(tokenizer, c, k) for k in continuations] for c in contexts]
    out: list[list[float]] = [[float("nan")] * len(continuations) for _ in contexts]
    single = all(len(cont) == 1 and ctx == row[0][0] for row in pairs for ctx, cont in row)
    if single:
        # One pass per question: every continuation is the next token after the same context.
        encoded = [row[0][0] for row in pairs]

        def run(batch: list[int]) -> None:
            ids, mask = _left_pad([encoded[i] for i in batch], tokenizer.pad_token_id, device)
            logp = _last_logprobs(model, ids, mask)
            for row, index in enumerate(batch):
                out[index] = [float(logp[row, cont[0]]) for _, cont in pairs[index]]
            if progress:
                progress(len(batch))

        each_batch([len(e) for e in encoded], batch_size, max_tokens, run)
        return out

    flat = [(i, j, ctx, cont) for i, row in enumerate(pairs) for j, (ctx, cont) in enumerate(row)]

    def run_rows(batch: list[int]) -> None:
        rows = [flat[k] for k in batch]
        ids, mask = _left_pad([ctx + cont for _, _, ctx, cont in rows], tokenizer.pad_token_id, device)
        width = ids.shape[1]
        targets = torch.full_like(ids, -100)
        for r, (_, _, ctx, cont) in enumerate(rows):
            start = width - len(ctx) - len(cont)
            # Position p predicts token p + 1: the continuation's tokens follow the context's last.
            for t in range(len(cont)):
                targets[r, start + len(ctx) - 1 + t] = cont[t]
        logp, _, _ = target_logprobs(model, ids, mask, targets)
        valid = targets != -100
        sums = torch.where(valid, logp, torch.zeros_like(logp)).sum(-1).tolist()
        for (i, j, _, _), value in zip(rows, sums):
            out[i][j] = value
        if progress:
            progress(len(batch))

    each_batch([len(ctx) + len(cont) for _, _, ctx, cont in flat], batch_size, max_tokens, run_rows)
    return out
