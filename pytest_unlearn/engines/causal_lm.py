"""Batched model passes for SemEval-2025 Task 4: greedy generation, document NLL, MMLU logits.

The official scripts run one prompt at a time. We batch with left padding and explicit
position ids, which gives the same greedy outputs and losses in float32 (proved in
``tests/suites/semeval/test_backend.py`` and measured in ``benchmarks/semeval_speed.py``).
Imported only when the semeval suite runs: it imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.mmlu import CHOICES, MMLUData, build_prompt, format_example

# open-instruct's run_mmlu.py drops few-shot examples until a prompt fits 2048 tokens.
MMLU_MAX_PROMPT_TOKENS = 2048
Progress = Callable[[int], None]


#: On a CPU a padded position costs as much as a real one and a bigger batch buys little
#: (SmolLM2-135M, one thread: its decoder over 16 documents of ~96 tokens took 4.6 s in one batch
#: and 5.8 s one by one, but the NLL pass over them 14 s in one batch padded to the longest and
#: 8.8 s one by one): a CPU batch only takes rows costing at least this share of its longest row's
#: (:func:`row_cost`).
CPU_MIN_ROW_SHARE = 0.85
#: On a CPU a row costing more than this many tokens (:func:`row_cost`) runs alone: its matrices
#: already fill the cores, and company only adds memory (three 2,000-token rows of SmolLM2-135M,
#: one thread: 54.7 s in one batch, 51.0 s one at a time, the same within the machine's noise).
CPU_ALONE_TOKENS = 1024


def attention_span(model: Any) -> int | None:
    """The row length at which a token's attention costs as much as its linear layers: per layer
    a token at position x spends ~4·x·hidden FLOPs on attention (QKᵀ and AV) against
    ~8·hidden² + 6·hidden·intermediate on its projections and MLP, so x = 2·hidden + 1.5·intermediate
    (3,456 for SmolLM2-135M). ``None`` when the config does not say."""
    config = getattr(model, "config", None)
    hidden = getattr(config, "hidden_size", None)
    if not isinstance(hidden, int):
        return None
    inner = getattr(config, "intermediate_size", None)
    return int(2 * hidden + 1.5 * (inner if isinstance(inner, int) else 4 * hidden))


def row_cost(length: int, span: int | None) -> float:
    """What a row of ``length`` tokens costs, in tokens: its linear layers, plus with ``span``
    (:func:`attention_span`) its attention, quadratic in the length (position x attends to x
    tokens: a row's attention is ~length²/2 token-positions)."""
    return length if span is None else length * (1 + length / (2 * span))


def _batches(
    lengths: Sequence[int],
    batch_size: int,
    max_tokens: int | None = None,
    device: str | None = None,
    span: int | None = None,
) -> list[list[int]]:
    """Longest first, so prompts of similar length share a batch and padding stays small; with
    ``max_tokens`` a batch also costs at most that many tokens (rows × :func:`row_cost` of its
    width: a long document goes alone, short ones pack together), ``batch_size`` staying the
    bound on rows; on the CPU a row costing less than :data:`CPU_MIN_ROW_SHARE` of its batch's
    longest starts a new batch, and one costing over :data:`CPU_ALONE_TOKENS` runs alone. With
    ``span`` the cost counts attention, quadratic in length."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    if max_tokens is None and device != "cpu":
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for index in order:
        # Longest first: the batch's width is its first row's length.
        width = row_cost(lengths[batches[-1][0]], span) if batches else 0.0
        fits = bool(batches) and len(batches[-1]) < batch_size
        if fits and max_tokens is not None:
            fits = width * (len(batches[-1]) + 1) <= max_tokens
        if fits and device == "cpu":
            fits = width <= CPU_ALONE_TOKENS and row_cost(lengths[index], span) >= CPU_MIN_ROW_SHARE * width
        if fits:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def _out_of_memory(exc: BaseException) -> bool:
    """An allocation failure (CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError)."""
    if isinstance(exc, (getattr(torch, "OutOfMemoryError", MemoryError), MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        words in text for words in ("out of memory", "not enough memory", "can't allocate memory")
    )


def each_batch(
    lengths: Sequence[int],
    batch_size: int,
    max_tokens: int | None,
    run: Callable[[list[int]], None],
    names: Sequence[str] | None = None,
    device: str | None = None,
    span: int | None = None,
) -> None:
    """``run`` every batch (:func:`_batches`); a batch that runs out of memory is split in halves and retried, and
    a single row that cannot fit is one line saying what to do (the finished checks are kept)."""

    def attempt(batch: list[int]) -> None:
        try:
            run(batch)
        except Exception as exc:
            if not _out_of_memory(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(batch) == 1:
                what = (
                    f"{names[batch[0]]} ({lengths[batch[0]]} tokens)"
                    if names
                    else f"a text of {lengths[batch[0]]} tokens"
                )
                raise UnlearnError(
                    f"{what} does not fit in memory even alone ({type(exc).__name__}); "
                    "pass --dtype bfloat16 (or float16), a smaller --setting max_batch_tokens, or shorter texts"
                ) from None
            half = len(batch) // 2
            attempt(batch[:half])
            attempt(batch[half:])

    for batch in _batches(lengths, batch_size, max_tokens, device, span):
        attempt(batch)


#: Float32 elements of logits held at once by the chunked loss passes (64 Mi: 256 MB), however
#: long the documents: a 4,668-token document of a 49,152-word vocabulary would otherwise hold
#: 0.9 GB of logits, plus a float32 copy and the log-softmax, per row of the batch.
LOGITS_BUDGET = 64 * 2**20
# Configs whose logits are not the output embedding of the last hidden state (soft-capping,
# scaling): their passes keep the model's own forward, chunked after the logits.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def _head_and_body(model: Any) -> tuple[Any, Any] | None:
    """(the decoder without its head, the head) when logits are just ``head(hidden)``."""
    config = getattr(model, "config", None)
    if any(getattr(config, name, None) not in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS):
        return None
    body = getattr(model, "model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or head is None:
        return None
    return body, head


def _text_first(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A left-padded batch with each row's text moved to the left edge and the pads after it
    (trimmed to the longest row), and each row's shift; ``None`` when the mask is not left
    padding (a gap inside a row).

    A causal model needs no attention mask for such a batch: a real token attends only to the
    tokens before it, all real, at positions counted from 0, exactly as in its row's unpadded
    pass. Without a mask the attention runs its causal kernel (SDPA's flash path on the CPU,
    memory linear in the length) instead of a ``[batch, heads, width, width]`` masked one (three
    2,000-token documents of SmolLM2-135M and a short one: 47.6 s in the masked batch, 29.4 s text
    first, 28.6 s one row at a time; ``benchmarks/semeval_speed.py``)."""
    if ids.shape[1] == 0 or not bool((mask[:, 1:] >= mask[:, :-1]).all()):
        return None
    width = ids.shape[1]
    lengths = mask.sum(-1)
    shift = width - lengths
    index = (torch.arange(width, device=ids.device)[None, :] + shift[:, None]).clamp(max=width - 1)
    longest = int(lengths.max())
    return ids.gather(1, index)[:, : max(1, longest)], shift


def _scored_logprobs(
    logits_of: Callable[[int, int], torch.Tensor], targets: torch.Tensor, chunk: int, vocabulary: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """log p(target) (and with ``vocabulary`` the mean and variance of log p) of each of the
    ``targets.shape[0]`` scored positions, ``logits_of(start, stop)`` giving the float32
    ``[stop - start, vocabulary]`` logits of those positions, ``chunk`` positions at a time.

    torch's own ``log_softmax``, as the official losses (``cross_entropy``) use: it is biased by
    ~8e-6 per token against a float64 reference on SmolLM2's 49k vocabulary (its sum of
    exponentials), and a more exact ``logsumexp`` would move the mean NLL 8e-6 away from the
    official loop's; warm, it is also the fastest of the two (0.23 s against 0.97 s for 1,365
    positions)."""
    n = targets.shape[0]
    out = torch.empty(n, dtype=torch.float32, device=targets.device)
    mu = torch.empty_like(out) if vocabulary else None
    sigma2 = torch.empty_like(out) if vocabulary else None
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        logp = torch.log_softmax(logits_of(start, stop), dim=-1)
        out[start:stop] = logp.gather(-1, targets[start:stop, None])[:, 0]
        if vocabulary:
            p = logp.exp()
            m = (p * logp).sum(-1)
            mu[start:stop] = m  # type: ignore[index]
            sigma2[start:stop] = (p * logp.square()).sum(-1) - m.square()  # type: ignore[index]
        del logp
    return out, mu, sigma2


def _logprobs_at(
    decode: Callable[[], torch.Tensor],
    head: Any | None,
    rows: torch.Tensor,
    at: torch.Tensor,
    wanted: torch.Tensor,
    budget: int,
    vocabulary: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """:func:`_scored_logprobs` of ``wanted`` at positions ``(rows, at)`` of the decoder output
    ``decode()`` gives: hidden states gathered there and run through ``head`` (the full hidden
    states are dropped once gathered), or, with ``head`` None, the model's own logits read there;
    ``budget // vocabulary`` positions at a time."""
    if head is not None:
        hidden = decode()[rows, at]
        vocab = head.out_features if hasattr(head, "out_features") else head.weight.shape[0]

        def logits_of(start: int, stop: int) -> torch.Tensor:
            return head(hidden[start:stop]).float()
    else:
        full = decode()
        vocab = full.shape[-1]

        def logits_of(start: int, stop: int) -> torch.Tensor:
            return full[rows[start:stop], at[start:stop]].float()

    return _scored_logprobs(logits_of, wanted, max(1, budget // max(1, vocab)), vocabulary)


def target_logprobs(
    model: Any,
    ids: torch.Tensor,
    mask: torch.Tensor,
    targets: torch.Tensor,
    *,
    vocabulary: bool = False,
    budget: int = LOGITS_BUDGET,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """log p(targets[:, j] | ids[:, :j+1]) at every position j with a target (others NaN), and
    with ``vocabulary`` the mean and variance of log p over the whole next-token distribution
    there (Min-K%++). ``targets`` is ``-100`` where nothing is scored.

    No work for padding: a left-padded batch runs text first and unmasked
    (:func:`_text_first`), and the head runs on the scored positions only, gathered from every
    row into ``budget // vocabulary`` positions at a time, so no ``[batch, length, vocabulary]``
    float32 tensor is ever held (nor one for a prompt's or a pad's position)."""
    batch, width = ids.shape
    moved = _text_first(ids, mask)
    if moved is not None:
        forward_ids, shift = moved
        # No mask and no position ids: the causal pass of each row's text (see _text_first).
        extra: dict[str, Any] = {}
    else:
        forward_ids, shift = ids, torch.zeros(batch, dtype=torch.long, device=ids.device)
        extra = {"attention_mask": mask, "position_ids": _position_ids(mask)}
    rows, cols = (targets != -100).nonzero(as_tuple=True)
    at = cols - shift[rows]
    wanted = targets[rows, cols]
    nan = torch.full((batch, width), float("nan"), dtype=torch.float32, device=ids.device)
    out, mu, sigma2 = nan.clone(), (nan.clone() if vocabulary else None), (nan.clone() if vocabulary else None)
    if rows.numel() == 0:
        return out, mu, sigma2
    split = _head_and_body(model)

    def decode() -> torch.Tensor:
        # No key/value cache: a scoring pass never continues, and the cache of every layer would
        # be held at once (1.3 GB for 28k tokens of a 135M Llama; benchmarks/semeval_memory.py).
        if split is not None:
            return split[0](input_ids=forward_ids, use_cache=False, **extra).last_hidden_state
        return model(input_ids=forward_ids, use_cache=False, **extra).logits

    head = split[1] if split is not None else None
    picked, m, v = _logprobs_at(decode, head, rows, at, wanted, budget, vocabulary)
    out[rows, cols] = picked
    if vocabulary:
        mu[rows, cols] = m  # type: ignore[index]
        sigma2[rows, cols] = v  # type: ignore[index]
    return out, mu, sigma2


def _encode(tokenizer: Any, text: str, truncate: int | None) -> list[int]:
    if truncate is None:
        return tokenizer(text).input_ids
    return tokenizer(text, truncation=True, max_length=truncate).input_ids


def _next_token_targets(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Position j predicts ids[:, j+1], where it and the token before it are real (not padding)."""
    targets = torch.full_like(ids, -100)
    valid = (mask[:, 1:] * mask[:, :-1]).bool()
    targets[:, :-1] = torch.where(valid, ids[:, 1:], targets[:, :-1])
    return targets


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


#: Generation-config fields whose non-default values make ``generate`` change the logits before
#: its argmax (a logits processor) or stop otherwise; with any of them set, :func:`generate_greedy`
#: leaves decoding to ``generate`` itself so that outputs stay those of the official loop.
_PLAIN_GREEDY = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_repetition_penalty": (None, 1.0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
    "renormalize_logits": (None, False),
    "num_beams": (None, 1),
    "guidance_scale": (None, 1.0),
    "watermarking_config": (None,),
    "stop_strings": (None,),
    "max_time": (None,),
}


def _eos_ids(model: Any, tokenizer: Any) -> set[int] | None:
    """The tokens that end a row as ``generate`` would (the generation config's eos ids), or
    ``None`` when the config asks ``generate`` for more than a plain argmax."""
    config = getattr(model, "generation_config", None)
    if config is None or getattr(model.config, "is_encoder_decoder", False):
        return None
    if any(getattr(config, name, None) not in plain for name, plain in _PLAIN_GREEDY.items()):
        return None
    eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def _refuse_non_finite(logits: torch.Tensor, rows: list[int], names: Sequence[str], source: str) -> None:
    """Greedy decoding hides NaN or infinite logits: their argmax is token 0, often the end of
    text, and the empty output reads as forgotten (every forget check would pass). Refused at the
    step they appear, in one line naming the prompts."""
    finite = torch.isfinite(logits).all(-1)
    if bool(finite.all()):
        return
    bad = [names[row] for row, ok in zip(rows, finite.tolist()) if not ok]
    from pytest_unlearn import domains

    domains.require_finite(
        [float("nan")] * len(bad) + [0.0] * (len(rows) - len(bad)),
        bad + [""] * (len(rows) - len(bad)),
        what="logits while generating",
        unit="prompts of a batch",
        source=source,
    )


def _greedy_rows(
    model: Any,
    ids: torch.Tensor,
    mask: torch.Tensor,
    max_new_tokens: int,
    eos: set[int],
    names: Sequence[str] | None = None,
    source: str = "--model",
) -> list[list[int]]:
    """Greedy decoding of a left-padded batch in which a row leaves the batch, and its keys and
    values the cache, as soon as it has produced an end token: the rows still running cost one
    step each, not the whole batch's (``generate`` runs every row until the last one ends).

    Each step is ``generate``'s own: the model with its cache, explicit position ids (the count
    of real tokens before), the logits of the last position only, their float32 argmax.
    """
    from transformers import DynamicCache

    out: list[list[int]] = [[] for _ in range(ids.shape[0])]
    rows = torch.arange(ids.shape[0], device=ids.device)
    positions = _position_ids(mask)
    cache = DynamicCache(config=model.config)
    step_ids, step_positions = ids, positions
    next_position = positions[:, -1] + 1
    end = torch.tensor(sorted(eos), dtype=torch.long, device=ids.device)
    for step in range(max_new_tokens):
        logits = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        last = logits[:, -1].to(dtype=torch.float32)
        if names is not None:
            _refuse_non_finite(last, rows.tolist(), names, source)
        tokens = last.argmax(-1)
        for row, token in zip(rows.tolist(), tokens.tolist()):
            out[row].append(token)
        if step == max_new_tokens - 1:
            break
        running = ~torch.isin(tokens, end) if end.numel() else torch.ones_like(tokens, dtype=torch.bool)
        if not bool(running.any()):
            break
        if not bool(running.all()):
            keep = running.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            rows, tokens, mask, next_position = rows[keep], tokens[keep], mask[keep], next_position[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        step_ids, step_positions = tokens[:, None], next_position[:, None]
        next_position = next_position + 1
    return out


def _cut_at(tokens: list[int], stops: set[int]) -> list[int]:
    """``tokens`` before the first of ``stops`` (all of them when none occurs)."""
    for position, token in enumerate(tokens):
        if token in stops:
            return tokens[:position]
    return tokens


@torch.no_grad()
def generate_greedy(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    device: str,
    max_tokens: int | None = None,
    progress: Progress | None = None,
    source: str | None = None,
    stop_ids: Collection[int] = (),
    clean_up_tokenization_spaces: bool | None = True,
) -> list[str]:
    """Greedy continuations of the raw prompts, new tokens only, special tokens skipped.

    ``stop_ids``: tokens that end a continuation besides the end-of-text ones, cut off with
    everything after them (open-instruct's ``KeyWordsCriteria`` with one-token stop sequences,
    as RWKU's ``generate_completions`` uses it). ``clean_up_tokenization_spaces`` None decodes
    with the tokenizer's own default (RWKU's ``batch_decode`` passes none).

    With ``source`` (the model's flag and path, for the error), non-finite logits are refused in
    one line instead of decoded (:func:`_refuse_non_finite`).

    Mirrors the scorer: ``tokenizer(prompt)`` (default special tokens), ``generate(...,
    do_sample=False, use_cache=True, pad_token_id=eos)``, ``batch_decode(new_tokens,
    skip_special_tokens=True, clean_up_tokenization_spaces=True)``. Decoding drops finished rows
    from the batch (:func:`_greedy_rows`) unless the model's generation config asks for logits
    processors, where ``generate`` itself runs.
    """
    encoded = [tokenizer(p).input_ids for p in prompts]
    outputs: list[str] = [""] * len(prompts)
    eos = _eos_ids(model, tokenizer)
    stops = {int(i) for i in stop_ids}
    if eos is not None and stops:
        eos = eos | stops  # a row stops there; the cut below drops the stop token itself
    # A row costs its prompt and the tokens it will generate.
    for batch in _batches([len(e) + max_new_tokens for e in encoded], batch_size, max_tokens, device):
        ids, mask = _left_pad([encoded[i] for i in batch], tokenizer.pad_token_id, device)
        if eos is not None:
            names = None if source is None else [f"prompt {i}" for i in batch]
            new_tokens: Any = _greedy_rows(model, ids, mask, max_new_tokens, eos, names, source or "")
        else:
            if source is not None:  # generate() decodes on its own: probe the logits first
                require_finite_generation(model, tokenizer, [prompts[i] for i in batch], device=device, source=source)
            generated = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                use_cache=True,
                pad_token_id=tokenizer.eos_token_id,
            )
            new_tokens = generated[:, ids.shape[1] :]
        if stops:
            new_tokens = [_cut_at(list(map(int, row)), stops) for row in new_tokens]
        cleanup = (
            {}
            if clean_up_tokenization_spaces is None
            else {"clean_up_tokenization_spaces": clean_up_tokenization_spaces}
        )
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True, **cleanup)
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
    max_tokens: int | None = None,
    names: Sequence[str] | None = None,
    truncate: int | None = None,
    progress: Progress | None = None,
) -> list[float]:
    """Mean next-token NLL of each whole document (``model(ids, labels=ids).loss`` per document),
    the logits chunked along the sequence (:func:`target_logprobs`); ``truncate`` cuts each
    document to that many tokens (the model's context)."""
    encoded = [_encode(tokenizer, d, truncate) for d in documents]
    losses = [float("nan")] * len(documents)

    def run(batch: list[int]) -> None:
        ids, mask = _left_pad([encoded[i] for i in batch], tokenizer.pad_token_id, device)
        targets = _next_token_targets(ids, mask)
        logp, _, _ = target_logprobs(model, ids, mask, targets)
        # Validity from the targets, not from the values: a NaN output must stay a NaN loss.
        valid = targets != -100
        per_doc = torch.where(valid, -logp, torch.zeros_like(logp)).sum(-1) / valid.sum(-1)
        for index, value in zip(batch, per_doc.tolist()):
            losses[index] = value
        if progress:
            progress(len(batch))

    each_batch([len(e) for e in encoded], batch_size, max_tokens, run, names, device, attention_span(model))
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


def mmlu_prefixes(data: MMLUData, prompts: Sequence[tuple[str, int, str]]) -> list[str]:
    """Each prompt of :func:`mmlu_prompts` without its question: the header and the shots, the
    same text for every question of a subject (with the same number of shots)."""
    out = []
    for subject, index, prompt in prompts:
        question = format_example(data.test[subject][index], include_answer=False)
        out.append(prompt[: len(prompt) - len(question)])
    return out


def answer_token_ids(tokenizer: Any) -> list[int]:
    """The last token of " A", " B", " C", " D" (as ``run_mmlu.py`` picks them)."""
    return [tokenizer.encode(" " + letter, add_special_tokens=False)[-1] for letter in CHOICES]


@dataclass(frozen=True)
class SharedPrefixes:
    """How MMLU prompts split into a per-subject shared prefix and per-question suffixes.

    ``encoded[i]`` is prompt i's full tokenization; ``groups`` holds (prefix ids, member indices)
    with ``encoded[i] == prefix + encoded[i][len(prefix):]`` checked for every member and at
    least one suffix token left; ``unshared`` the prompts that run whole (no group, or the
    split did not give the prompt's own tokens).
    """

    encoded: list[list[int]]
    groups: list[tuple[list[int], list[int]]]
    unshared: list[int]

    @property
    def prefix_tokens(self) -> int:
        """Tokens run once per group."""
        return sum(len(prefix) for prefix, _ in self.groups)

    @property
    def suffix_tokens(self) -> int:
        """Tokens run per question after a shared prefix."""
        return sum(len(self.encoded[i]) - len(prefix) for prefix, members in self.groups for i in members)

    @property
    def unshared_tokens(self) -> int:
        return sum(len(self.encoded[i]) for i in self.unshared)

    @property
    def full_tokens(self) -> int:
        """Tokens the unshared pass runs: every prompt whole."""
        return sum(len(e) for e in self.encoded)


def share_prefixes(tokenizer: Any, prompts: Sequence[str], prefixes: Sequence[str | None]) -> SharedPrefixes:
    """Split each prompt after its ``prefixes[i]`` (a text the prompt starts with; ``None``: not
    shared), prompts with the same prefix text forming one group.

    Tokenizers merge across the boundary (a prefix ending in "\\n\\n" tokenized alone ends in
    one token that, followed by a question, may be two), so the prefix's own tokenization is not
    trusted: the group shares the first ``len(prefix tokens)`` tokens of the full prompts, or one
    fewer when more prompts agree on that, and every member's full tokenization is checked to
    start with exactly those; a prompt where it does not runs whole.
    """
    encoded = [tokenizer(p).input_ids for p in prompts]
    by_prefix: dict[str, list[int]] = {}
    unshared: list[int] = []
    for index, (prompt, prefix) in enumerate(zip(prompts, prefixes)):
        if prefix and prompt.startswith(prefix) and len(prompt) > len(prefix):
            by_prefix.setdefault(prefix, []).append(index)
        else:
            unshared.append(index)
    groups: list[tuple[list[int], list[int]]] = []
    for prefix, members in by_prefix.items():
        alone = tokenizer(prefix).input_ids
        best: tuple[list[int], list[int]] = ([], [])
        for length in (len(alone), len(alone) - 1):
            shared = alone[:length]
            fits = [i for i in members if len(encoded[i]) > length and encoded[i][:length] == shared]
            if length > 0 and len(fits) > len(best[1]):
                best = (shared, fits)
        if len(best[1]) < 2:
            unshared.extend(members)  # nothing to share with a single question
            continue
        groups.append(best)
        unshared.extend(i for i in members if i not in set(best[1]))
    return SharedPrefixes(encoded, groups, sorted(unshared))


def _choice_probs(model: Any, last: torch.Tensor, candidates: list[int], *, is_hidden: bool) -> torch.Tensor:
    """Softmax over the four answer tokens' logits at each row's last position (``last``: its
    hidden state, or with ``is_hidden=False`` its logits)."""
    logits = model.get_output_embeddings()(last) if is_hidden else last
    return torch.softmax(logits[:, candidates].float(), dim=-1)


def _record(results: list[tuple[str, list[float]]], batch: list[int], probs: torch.Tensor) -> None:
    for index, row in zip(batch, probs.tolist()):
        best = max(range(len(CHOICES)), key=lambda j: (row[j], -j))
        results[index] = (CHOICES[best], row)


@torch.no_grad()
def mmlu_predict(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    batch_size: int,
    device: str,
    max_tokens: int | None = None,
    progress: Progress | None = None,
    prefixes: Sequence[str | None] | None = None,
) -> list[tuple[str, list[float]]]:
    """For each prompt, the predicted letter and the probabilities of A-D at the next token.

    With ``prefixes`` (each prompt's 5-shot header, :func:`share_prefixes`), a group's prefix is
    run once and its key/value cache expanded over each batch of the group's suffixes, so a
    question costs its own ~60 tokens instead of its ~600-token prompt; the letters and
    probabilities equal the unshared pass (``tests/suites/semeval/test_backend.py``). The head runs on
    the last position only.
    """
    candidates = answer_token_ids(tokenizer)
    plan = share_prefixes(tokenizer, prompts, prefixes if prefixes is not None else [None] * len(prompts))
    encoded = plan.encoded
    results: list[tuple[str, list[float]]] = [("", [])] * len(prompts)
    split = _head_and_body(model)

    def run_whole(batch: list[int]) -> None:
        ids, mask = _left_pad([encoded[i] for i in batch], tokenizer.pad_token_id, device)
        positions = _position_ids(mask)
        if split is not None:
            hidden = split[0](input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
            probs = _choice_probs(model, hidden[:, -1], candidates, is_hidden=True)
        else:
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            probs = _choice_probs(model, logits[:, -1], candidates, is_hidden=False)
        _record(results, batch, probs)
        if progress:
            progress(len(batch))

    unshared = plan.unshared
    each_batch(
        [len(encoded[i]) for i in unshared],
        batch_size,
        max_tokens,
        lambda b: run_whole([unshared[i] for i in b]),
        device=device,
        span=attention_span(model),
    )
    for prefix, members in plan.groups:
        run = _suffix_runner(model, split, prefix, encoded, tokenizer.pad_token_id, candidates, device)

        def run_members(batch: list[int], members: list[int] = members, run: Callable = run) -> None:
            rows = [members[j] for j in batch]
            _record(results, rows, run(rows))
            if progress:
                progress(len(rows))

        # Batched by suffix length (what a row computes, and pads); a row also holds the
        # prefix's keys, which the token budget counts through the rows it allows.
        suffixes = [len(encoded[i]) - len(prefix) for i in members]
        rows = (
            batch_size if max_tokens is None else max(1, min(batch_size, max_tokens // (len(prefix) + max(suffixes))))
        )
        each_batch(suffixes, rows, None, run_members, device=device)
    return results


def _prefix_forward(
    model: Any, split: tuple[Any, Any] | None, prefix: list[int], pad_id: int, device: str
) -> Callable[[list[list[int]]], tuple[Any, torch.Tensor]]:
    """Run ``prefix`` once; the returned function runs a batch of suffixes (each text's tokens
    after the prefix) on its key/value cache and gives the decoder's output (hidden states with
    ``split``, else logits: ``[rows, longest suffix, ...]``) and the suffixes' mask."""
    from transformers import DynamicCache

    forward = split[0] if split is not None else model
    cached = forward(input_ids=torch.tensor([prefix], device=device), use_cache=True).past_key_values
    layers = [(layer.keys, layer.values) for layer in cached.layers]
    width = len(prefix)

    def run(suffixes: list[list[int]]) -> tuple[Any, torch.Tensor]:
        # Right-padded suffixes after the prefix: a real token attends to the prefix and to the
        # suffix tokens before it only (causal), as in its whole text; pads come after it.
        rows, longest = len(suffixes), max(len(s) for s in suffixes)
        ids = torch.full((rows, longest), pad_id, dtype=torch.long)
        mask = torch.zeros((rows, width + longest), dtype=torch.long)
        mask[:, :width] = 1
        for row, suffix in enumerate(suffixes):
            ids[row, : len(suffix)] = torch.tensor(suffix, dtype=torch.long)
            mask[row, width : width + len(suffix)] = 1
        positions = torch.arange(width, width + longest, device=device).expand(rows, -1)
        # A fresh cache per batch (the forward appends the suffixes' keys to it); expand is a
        # view, so the prefix is copied once per batch, by the cache's own concatenation.
        cache = DynamicCache(
            ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in layers],
            config=model.config,
        )
        out = forward(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        )
        return (out.last_hidden_state if split is not None else out.logits), mask[:, width:].to(device)

    return run


def _suffix_runner(
    model: Any,
    split: tuple[Any, Any] | None,
    prefix: list[int],
    encoded: list[list[int]],
    pad_id: int,
    candidates: list[int],
    device: str,
) -> Callable[[list[int]], torch.Tensor]:
    """Run ``prefix`` once; the returned function gives the A-D probabilities of a batch of
    prompts (indices into ``encoded``) that start with it, from their suffixes alone."""
    forward = _prefix_forward(model, split, prefix, pad_id, device)
    width = len(prefix)

    def run(batch: list[int]) -> torch.Tensor:
        suffixes = [encoded[i][width:] for i in batch]
        out, _ = forward(suffixes)
        last = torch.tensor([len(s) - 1 for s in suffixes], device=device)
        picked = torch.arange(len(batch), device=device)
        return _choice_probs(model, out[picked, last], candidates, is_hidden=split is not None)

    return run


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


#: The fewest tokens a group of answers to one prompt must share for the prompt to run once:
#: below it the cache copy per batch costs about what the shared tokens save.
MIN_SHARED_TOKENS = 8

#: The least share of a group's tokens that running its prompt once must save. A shared group
#: runs as its own small batches (its rows cannot join other prompts' rows), which costs about
#: what a fifth of the tokens would: on the real SmolLM2-135M, TOFU-shaped texts saving 19% ran
#: at 0.86-0.95x and texts saving 52% at 1.46-1.70x (``benchmarks/tofu_speed.py``, two runs).
MIN_SHARED_FRACTION = 0.4


def shared_prompt_groups(
    pairs: Sequence[tuple[str, str]],
    encoded: Sequence[tuple[list[int], int]],
    min_fraction: float = MIN_SHARED_FRACTION,
) -> list[tuple[int, list[int]]]:
    """(tokens shared, member indices) of the answers given to one prompt (TOFU asks each question
    with its answer, its paraphrased answer and five perturbed ones): the members' longest common
    token prefix, cut to end before every member's first scored position (the position that
    predicts its first answer token must run with the answer's own tokens), at least
    :data:`MIN_SHARED_TOKENS`, and saving at least ``min_fraction`` of the group's tokens. The
    tokens are compared, not the prompt's text: a tokenizer may merge the prompt's last
    characters with the answer's first."""
    import os.path

    by_prompt: dict[str, list[int]] = {}
    for index, (prompt, _) in enumerate(pairs):
        by_prompt.setdefault(prompt, []).append(index)
    groups = []
    for members in by_prompt.values():
        if len(members) < 2:
            continue
        common = len(os.path.commonprefix([encoded[i][0] for i in members]))
        width = min(common, *(encoded[i][1] - 1 for i in members))
        saved = width * (len(members) - 1)
        if width >= MIN_SHARED_TOKENS and saved >= min_fraction * sum(len(encoded[i][0]) for i in members):
            groups.append((width, members))
    return groups


@torch.no_grad()
def answer_span_nll(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    max_length: int,
    batch_size: int,
    device: str,
    max_tokens: int | None = None,
    progress: Progress | None = None,
    share_prompts: bool = True,
    min_shared_fraction: float = MIN_SHARED_FRACTION,
) -> list[tuple[float, int]]:
    """(summed NLL, token count) of each answer given its prompt: TOFU's ``get_batch_loss``
    over the answer tokens (and the end-of-sequence token after them), batched with left
    padding, the head run on the answers' positions only.

    With ``share_prompts``, answers to the same prompt run the prompt once and their answers on
    its key/value cache, as MMLU's 5-shot prefixes do, where that saves enough tokens to pay for
    the smaller batches (:func:`shared_prompt_groups`, ``benchmarks/tofu_speed.py``); the sums
    equal the unshared pass's to float32 rounding (``tests/suites/tofu/test_world.py``).
    ``min_shared_fraction`` is for tests and the benchmark."""
    eos = tokenizer.eos_token_id
    encoded = [answer_span_encoding(tokenizer, p, a, max_length) for p, a in pairs]
    results: list[tuple[float, int]] = [(float("nan"), 0)] * len(pairs)

    def labels_of(index: int) -> list[int]:
        seq, _ = encoded[index]
        return seq + ([eos] if len(seq) < max_length else [])

    def record(batch: list[int], logp: torch.Tensor, targets: torch.Tensor) -> None:
        valid = targets != -100
        totals = torch.where(valid, -logp, torch.zeros_like(logp)).sum(-1)
        for index, total, count in zip(batch, totals.tolist(), valid.sum(-1).tolist()):
            results[index] = (total, int(count))
        if progress:
            progress(len(batch))

    def run(batch: list[int]) -> None:
        rows = [encoded[i] for i in batch]
        ids, mask = _left_pad([r[0] for r in rows], tokenizer.pad_token_id, device)
        width = ids.shape[1]
        targets = torch.full((len(rows), width), -100, dtype=torch.long)
        for row, (index, (seq, n_prompt)) in enumerate(zip(batch, rows)):
            labels = labels_of(index)
            offset = width - len(seq)
            # Position j of the text predicts label j + 1; the prompt's labels are not scored.
            for j in range(len(seq)):
                if j + 1 < len(labels) and j + 1 >= n_prompt:
                    targets[row, offset + j] = labels[j + 1]
        targets = targets.to(ids.device)
        logp, _, _ = target_logprobs(model, ids, mask, targets)
        record(batch, logp, targets)

    groups = shared_prompt_groups(pairs, encoded, min_shared_fraction) if share_prompts else []
    grouped = {i for _, members in groups for i in members}
    alone = [i for i in range(len(pairs)) if i not in grouped]
    each_batch(
        [len(encoded[i][0]) for i in alone], batch_size, max_tokens, lambda b: run([alone[j] for j in b]),
        device=device, span=attention_span(model),
    )  # fmt: skip
    split = _head_and_body(model)
    for shared, members in groups:
        forward = _prefix_forward(model, split, encoded[members[0]][0][:shared], tokenizer.pad_token_id, device)

        def run_members(picked: list[int], members: list[int] = members, shared: int = shared,
                        forward: Callable = forward) -> None:  # fmt: skip
            batch = [members[j] for j in picked]
            suffixes = [encoded[i][0][shared:] for i in batch]
            out, _ = forward(suffixes)
            targets = torch.full((len(batch), out.shape[1]), -100, dtype=torch.long)
            for row, index in enumerate(batch):
                labels, n_prompt = labels_of(index), encoded[index][1]
                # Suffix position s is the text's position shared + s.
                for s in range(len(suffixes[row])):
                    j = shared + s
                    if j + 1 < len(labels) and j + 1 >= n_prompt:
                        targets[row, s] = labels[j + 1]
            targets = targets.to(out.device)
            rows, cols = (targets != -100).nonzero(as_tuple=True)
            head = split[1] if split is not None else None
            picked_logp, _, _ = _logprobs_at(lambda: out, head, rows, cols, targets[rows, cols], LOGITS_BUDGET, False)
            logp = torch.full(targets.shape, float("nan"), dtype=torch.float32, device=out.device)
            logp[rows, cols] = picked_logp
            record(batch, logp, targets)

        # Batched by answer length; a row also holds the prompt's keys, which the token budget
        # counts through the rows it allows (as mmlu_predict's groups).
        lengths = [len(encoded[i][0]) - shared for i in members]
        per_batch = batch_size if max_tokens is None else max(1, min(batch_size, max_tokens // (shared + max(lengths))))
        each_batch(lengths, per_batch, None, run_members, device=device)
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
    max_tokens: int | None = None,
    names: Sequence[str] | None = None,
    truncate: int | None = None,
    progress: Progress | None = None,
) -> list[dict[str, list[float]]]:
    """Per document, the log-prob of every token given its prefix (the targets
    :func:`document_nll` averages); with ``vocabulary`` also the mean and variance of log p
    under the full next-token distribution at each position (Min-K%++)."""
    encoded = [_encode(tokenizer, d, truncate) for d in documents]
    out: list[dict[str, list[float]]] = [{} for _ in documents]

    def run(batch: list[int]) -> None:
        ids, mask = _left_pad([encoded[i] for i in batch], tokenizer.pad_token_id, device)
        targets = _next_token_targets(ids, mask)
        logp, mu, sigma2 = target_logprobs(model, ids, mask, targets, vocabulary=vocabulary)
        for row, index in enumerate(batch):
            keep = targets[row] != -100
            stats = {"logprobs": logp[row][keep].tolist()}
            if vocabulary:
                stats["mu"] = mu[row][keep].tolist()  # type: ignore[index]
                stats["sigma2"] = sigma2[row][keep].tolist()  # type: ignore[index]
            out[index] = stats
        if progress:
            progress(len(batch))

    each_batch([len(e) for e in encoded], batch_size, max_tokens, run, names, device, attention_span(model))
    return out


@torch.no_grad()
def span_token_stats(
    model: Any,
    tokenizer: Any,
    encoded: Sequence[tuple[list[int], int]],
    *,
    batch_size: int,
    device: str,
    vocabulary: bool = False,
    max_tokens: int | None = None,
    progress: Progress | None = None,
) -> list[dict[str, list[float]]]:
    """Per (token ids, prompt length), the log-prob of each token after the prompt given all
    before it, and with ``vocabulary`` the mean and variance of log p under the full next-token
    distribution there (Min-K%++)."""
    out: list[dict[str, list[float]]] = [{} for _ in encoded]

    def run(batch: list[int]) -> None:
        rows = [encoded[i] for i in batch]
        ids, mask = _left_pad([r[0] for r in rows], tokenizer.pad_token_id, device)
        width = ids.shape[1]
        targets = torch.full_like(ids, -100)
        for row, (seq, n_prompt) in enumerate(rows):
            # Position j (of the unpadded text) predicts token j + 1; scored tokens are j + 1 >= n_prompt.
            start = width - len(seq) + max(n_prompt - 1, 0)
            targets[row, start : width - 1] = ids[row, start + 1 : width]
        logp, mu, sigma2 = target_logprobs(model, ids, mask, targets, vocabulary=vocabulary)
        for row, index in enumerate(batch):
            keep = targets[row] != -100
            stats = {"logprobs": logp[row][keep].tolist()}
            if vocabulary:
                stats["mu"] = mu[row][keep].tolist()  # type: ignore[index]
                stats["sigma2"] = sigma2[row][keep].tolist()  # type: ignore[index]
            out[index] = stats
        if progress:
            progress(len(batch))

    each_batch([len(ids) for ids, _ in encoded], batch_size, max_tokens, run, device=device, span=attention_span(model))
    return out


def answer_span_token_stats(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    max_length: int,
    batch_size: int,
    device: str,
    max_tokens: int | None = None,
    progress: Progress | None = None,
) -> list[dict[str, list[float]]]:
    """Per (prompt, answer), the log-prob of each answer token and mean and variance of log p
    under the full next-token distribution there, for membership-inference attacks. The labels
    are :func:`answer_span_nll`'s without the end-of-sequence one (open-unlearning's
    ``tokenwise_logprobs`` drops it)."""
    encoded = [answer_span_encoding(tokenizer, p, a, max_length) for p, a in pairs]
    return span_token_stats(
        model, tokenizer, encoded, batch_size=batch_size, device=device, vocabulary=True, max_tokens=max_tokens,
        progress=progress,
    )  # fmt: skip


def require_finite_generation(model: Any, tokenizer: Any, prompts: list[str], *, device: str, source: str) -> None:
    """Refuse to decode from a model whose log-likelihoods are NaN or infinite.

    Greedy decoding hides them: the argmax of NaN logits is token 0, often the end of text, and
    the empty output reads as forgotten (every forget check passes). One pass over the first
    prompts, joined, shows them before any generation is kept (and cached).
    """
    from pytest_unlearn import domains

    text = "\n".join(prompts[:4])
    if len(tokenizer(text)["input_ids"]) < 2:
        return  # no next token to score: nothing to learn
    probe = document_nll(model, tokenizer, [text], batch_size=1, device=device)
    domains.require_finite(probe, ["the first prompts"], what="log-likelihoods", unit="probe", source=source)
