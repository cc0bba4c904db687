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

from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytest_unlearn.engines.causal_lm import (
    Progress,
    _head_and_body,
    _left_pad,
    _position_ids,
    _text_first,
    attention_span,
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
    """log p of the next token after each (left-padded) row, the head run on the last position only;
    the rows run text first and unmasked (``causal_lm._text_first``: no attention over padding,
    a long context in the causal kernel instead of a ``[rows, heads, width, width]`` masked one)."""
    moved = _text_first(ids, mask)
    if moved is not None:
        forward_ids, shift = moved
        extra: dict[str, Any] = {"use_cache": False}
        last = ids.shape[1] - 1 - shift
    else:
        forward_ids, extra = ids, {"attention_mask": mask, "position_ids": _position_ids(mask)}
        last = torch.full((ids.shape[0],), ids.shape[1] - 1, device=ids.device)
    rows = torch.arange(ids.shape[0], device=ids.device)
    split = _head_and_body(model)
    if split is not None:
        body, head = split
        logits = head(body(input_ids=forward_ids, **extra).last_hidden_state[rows, last])
    else:
        logits = model(input_ids=forward_ids, **extra).logits[rows, last]
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
    add_bos_token: bool | None = None,
    max_length: int | None = None,
    on_truncate: Callable[[int, int], None] | None = None,
) -> list[list[float]]:
    """For each context, the log-likelihood of every continuation (lm-eval's ``loglikelihood``).

    BOS and context length follow lm-eval 0.4.13 (:mod:`pytest_unlearn.mcq.lmeval`):
    ``add_bos_token`` None lets the tokenizer decide; a pair longer than ``max_length`` (default
    the model's, as ``HFLM.max_length``) is cut from the left, ``on_truncate(rows, max_length)``
    is called once, and cut rows are batched apart from the others (a cut row is padded to the
    full context; a short row in its batch would pay for that padding)."""
    pairs, cut = _lm_eval_pairs(model, tokenizer, contexts, continuations, add_bos_token, max_length, on_truncate)
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

        apart = [i in cut for i in range(len(encoded))]
        _each_batch_apart([len(e) for e in encoded], apart, batch_size, max_tokens, run, device, attention_span(model))
        return out

    flat = [(i, j, ctx, cont) for i, row in enumerate(pairs) for j, (ctx, cont) in enumerate(row)]

    def run_rows(batch: list[int]) -> None:
        rows = [flat[k] for k in batch]
        # lm-eval's input is (context + continuation)[:-1]: the last token predicts nothing, and
        # a pair cut to max_length + 1 tokens must not feed the model max_length + 1 positions.
        ids, mask = _left_pad([(ctx + cont)[:-1] for _, _, ctx, cont in rows], tokenizer.pad_token_id, device)
        width = ids.shape[1]
        targets = torch.full_like(ids, -100)
        for r, (_, _, ctx, cont) in enumerate(rows):
            start = width - len(ctx) - len(cont) + 1
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

    _each_batch_apart(
        [len(ctx) + len(cont) - 1 for _, _, ctx, cont in flat], [i in cut for i, _, _, _ in flat],
        batch_size, max_tokens, run_rows, device, attention_span(model),
    )  # fmt: skip
    return out


def _lm_eval_pairs(
    model: Any,
    tokenizer: Any,
    contexts: Sequence[str],
    continuations: Sequence[str],
    add_bos_token: bool | None,
    max_length: int | None,
    on_truncate: Callable[[int, int], None] | None,
) -> tuple[list[list[tuple[list[int], list[int]]]], set[int]]:
    """Every (context, continuation) pair encoded and left-truncated as lm-eval 0.4.13 does, and
    the questions of which some pair was cut."""
    from pytest_unlearn.engines import lmeval

    limit = max_length if max_length is not None else lmeval.model_max_length(model, tokenizer)
    pairs: list[list[tuple[list[int], list[int]]]] = []
    cut: set[int] = set()
    for i, context in enumerate(contexts):
        row = []
        for continuation in continuations:
            ctx, cont = lmeval.encode_pair(tokenizer, context, continuation, add_bos_token)
            ctx, was_cut = lmeval.left_truncate(ctx, cont, limit)
            if was_cut:
                cut.add(i)
            row.append((ctx, cont))
        pairs.append(row)
    if cut and on_truncate is not None:
        on_truncate(len(cut), limit)
    return pairs, cut


def _each_batch_apart(
    lengths: Sequence[int],
    apart: Sequence[bool],
    batch_size: int,
    max_tokens: int | None,
    run: Callable[[list[int]], None],
    device: str | None = None,
    span: int | None = None,
) -> None:
    """``each_batch`` over the ordinary rows, then over the ``apart`` ones, never mixed; on the
    CPU by cost share (a short question is never padded to a long one's length: wmdp padded one
    to 8.7k tokens beside its neighbour)."""
    for flag in (False, True):
        chosen = [i for i, a in enumerate(apart) if a is flag]
        if chosen:

            def run_chosen(batch: list[int], chosen: list[int] = chosen) -> None:
                run([chosen[k] for k in batch])

            each_batch([lengths[i] for i in chosen], batch_size, max_tokens, run_chosen, device=device, span=span)
