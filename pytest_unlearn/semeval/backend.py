"""Batched model passes for SemEval-2025 Task 4: greedy generation, document NLL, MMLU logits.

The official scripts run one prompt at a time. We batch with left padding and explicit
position ids, which gives the same greedy outputs and losses in float32 (proved in
``tests/test_semeval_backend.py`` and measured in ``benchmarks/semeval_speed.py``).
Imported only when the semeval suite runs: it imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from pytest_unlearn.semeval.mmlu import CHOICES, MMLUData, build_prompt

# open-instruct's run_mmlu.py drops few-shot examples until a prompt fits 2048 tokens.
MMLU_MAX_PROMPT_TOKENS = 2048
Progress = Callable[[int], None]


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    # Longest first, so prompts of similar length share a batch and padding stays small.
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _left_pad(sequences: list[list[int]], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def _position_ids(mask: torch.Tensor) -> torch.Tensor:
    # Real tokens count from 0 whatever the padding in front of them, as in an unpadded pass.
    return (mask.cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def generate_greedy(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    device: str,
    progress: Progress | None = None,
) -> list[str]:
    """Greedy continuations of the raw prompts, new tokens only, special tokens skipped.

    Mirrors the scorer: ``tokenizer(prompt)`` (default special tokens), ``generate(...,
    do_sample=False, use_cache=True, pad_token_id=eos)``, ``batch_decode(new_tokens,
    skip_special_tokens=True, clean_up_tokenization_spaces=True)``.
    """
    encoded = [tokenizer(p).input_ids for p in prompts]
    outputs: list[str] = [""] * len(prompts)
    for batch in _batches([len(e) for e in encoded], batch_size):
        ids, mask = _left_pad([encoded[i] for i in batch], tokenizer.pad_token_id, device)
        generated = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=True,
            pad_token_id=tokenizer.eos_token_id,
        )
        texts = tokenizer.batch_decode(
            generated[:, ids.shape[1] :], skip_special_tokens=True, clean_up_tokenization_spaces=True
        )
        for index, text in zip(batch, texts):
            outputs[index] = text
        if progress:
            progress(len(batch))
    return outputs


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


def mmlu_prompts(tokenizer: Any, data: MMLUData, shots: int) -> list[tuple[str, int, str]]:
    """(subject, index, prompt) for every test question, subjects sorted as the official script."""
    prompts = []
    for subject in data.subjects:
        for index, question in enumerate(data.test[subject]):
            k = shots
            prompt = build_prompt(data.dev.get(subject, []), subject, question, k)
            while k > 0 and len(tokenizer(prompt, add_special_tokens=False).input_ids) > MMLU_MAX_PROMPT_TOKENS:
                k -= 1
                prompt = build_prompt(data.dev.get(subject, []), subject, question, k)
            prompts.append((subject, index, prompt))
    return prompts


def answer_token_ids(tokenizer: Any) -> list[int]:
    """The last token of " A", " B", " C", " D" (as ``run_mmlu.py`` picks them)."""
    return [tokenizer.encode(" " + letter, add_special_tokens=False)[-1] for letter in CHOICES]


@torch.no_grad()
def mmlu_predict(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    batch_size: int,
    device: str,
    progress: Progress | None = None,
) -> list[tuple[str, list[float]]]:
    """For each prompt, the predicted letter and the probabilities of A-D at the next token."""
    candidates = answer_token_ids(tokenizer)
    encoded = [tokenizer(p).input_ids for p in prompts]
    results: list[tuple[str, list[float]]] = [("", [])] * len(prompts)
    for batch in _batches([len(e) for e in encoded], batch_size):
        ids, mask = _left_pad([encoded[i] for i in batch], tokenizer.pad_token_id, device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=_position_ids(mask)).logits
        choice_logits = logits[:, -1, candidates].float()
        probs = torch.softmax(choice_logits, dim=-1)
        for index, row in zip(batch, probs.tolist()):
            best = max(range(len(CHOICES)), key=lambda j: (row[j], -j))
            results[index] = (CHOICES[best], row)
        if progress:
            progress(len(batch))
    return results


def answer_span_encoding(tokenizer: Any, prompt: str, answer: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of ``prompt + answer`` and how many leading tokens belong to the prompt.

    As TOFU's ``convert_raw_data_to_model_format``: the whole text is tokenized with special
    tokens and truncated to ``max_length``; the prompt's length is that of the prompt tokenized
    alone (special tokens included); end-of-sequence is a target after the answer unless the
    text fills ``max_length``.
    """
    ids = tokenizer(prompt + answer, add_special_tokens=True, max_length=max_length, truncation=True).input_ids
    n_prompt = len(tokenizer.tokenize(prompt, add_special_tokens=True))
    return list(ids), n_prompt


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
