"""The model passes open-unlearning's extra metrics read: argmax predictions over an answer, and
per-sample gradient norms (GradNorm). Imported only when such a metric is computed (torch).

Both use the encodings the tofu and muse backends already score with
(:func:`pytest_unlearn.engines.causal_lm.answer_span_encoding`: TOFU's prompt + answer, labels the
answer's tokens and EOS; and ``_encode`` for whole documents), one sample at a time: these are
per-sample quantities (a gradient per sample cannot be batched without per-sample gradients).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pytest_unlearn.engines.causal_lm import Progress, _encode, answer_span_encoding


@torch.no_grad()
def answer_predictions(
    model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, max_length: int, device: str
) -> list[tuple[list[int], list[int]]]:
    """Per (prompt, answer): the argmax next-token prediction at each labelled position and the
    label there (the answer's tokens, then EOS unless the text fills ``max_length``), as
    open-unlearning's ``tokenwise_vocab_logprobs`` sees them before it drops the last label."""
    eos = tokenizer.eos_token_id
    out: list[tuple[list[int], list[int]]] = []
    for prompt, answer in pairs:
        seq, n_prompt = answer_span_encoding(tokenizer, prompt, answer, max_length)
        labels = seq + ([eos] if len(seq) < max_length else [])
        ids = torch.tensor([seq], device=device)
        logits = model(input_ids=ids, use_cache=False).logits[0].float()
        # Position j predicts label j + 1; the prompt's labels are not scored.
        positions = [j for j in range(len(seq)) if j + 1 < len(labels) and j + 1 >= n_prompt]
        preds = logits[positions].argmax(-1).tolist() if positions else []
        out.append((preds, [labels[j + 1] for j in positions]))
    return out


def gradient_norm(model: Any, ids: list[int], score_from: int, p: float, device: str) -> float:
    """The mean over parameters of the ``p``-norm of the gradient of the mean NLL of the tokens
    at positions ``score_from..`` (open-unlearning ``mia/gradnorm.py``,
    ``GradNormAttack.compute_batch_values``). The model's own gradients are cleared after."""
    model.zero_grad(set_to_none=True)
    tensor = torch.tensor([ids], device=device)
    with torch.enable_grad():
        logp = torch.log_softmax(model(input_ids=tensor, use_cache=False).logits[0, :-1].float(), dim=-1)
        picked = logp.gather(1, tensor[0, 1:, None])[:, 0][max(score_from - 1, 0) :]
        (-picked.mean()).backward()
    norms = [param.grad.detach().norm(p=p) for param in model.parameters() if param.grad is not None]
    model.zero_grad(set_to_none=True)
    return float(torch.stack(norms).mean())


def answer_gradient_norms(
    model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, max_length: int, p: float, device: str
) -> list[float]:
    """GradNorm of each (prompt, answer) over the answer's tokens (EOS not scored, as
    :func:`pytest_unlearn.engines.causal_lm.answer_span_token_stats`)."""
    out = []
    for prompt, answer in pairs:
        seq, n_prompt = answer_span_encoding(tokenizer, prompt, answer, max_length)
        out.append(gradient_norm(model, seq, n_prompt, p, device))
    return out


def document_gradient_norms(
    model: Any,
    tokenizer: Any,
    documents: Sequence[str],
    *,
    p: float,
    device: str,
    truncate: int | None = None,
    progress: Progress | None = None,
) -> list[float]:
    """GradNorm of each whole document (every token after the first, as ``token_statistics``),
    one backward pass each; ``progress(1)`` after each."""
    out = []
    for document in documents:
        out.append(gradient_norm(model, _encode(tokenizer, document, truncate), 1, p, device))
        if progress:
            progress(1)
    return out


@torch.no_grad()
def completion_predictions(
    model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, max_length: int, device: str
) -> list[tuple[list[int], list[int]]]:
    """Per (prefix, text): the argmax prediction at each labelled position and the label there,
    as open-unlearning's ``CompletionDataset`` labels a MUSE verbmem passage
    (``data/utils.py`` ``preprocess_pretraining_instance`` with ``insert_space=True``: the ids of
    ``prefix + " " + text`` with special tokens, cut to the prefix's length + ``max_length``,
    labelled from the end of the prefix's own ids; no EOS is appended)."""
    out: list[tuple[list[int], list[int]]] = []
    for prefix, text in pairs:
        full = tokenizer(prefix + " " + text, add_special_tokens=True).input_ids
        start = len(tokenizer(prefix, add_special_tokens=True).input_ids)
        full = full[: start + max_length]
        start = max(start, 1)  # their rule: index 0 never carries a label
        if start >= len(full):
            out.append(([], []))
            continue
        logits = model(input_ids=torch.tensor([full], device=device), use_cache=False).logits[0].float()
        # Position j - 1 predicts label j.
        preds = logits[start - 1 : len(full) - 1].argmax(-1).tolist()
        out.append((preds, full[start:]))
    return out
