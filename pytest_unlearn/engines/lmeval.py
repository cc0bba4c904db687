"""lm-evaluation-harness 0.4.13's rules for special tokens and over-long contexts.

Transcribed from ``lm_eval/models/huggingface.py`` (``HFLM.tok_encode``, ``HFLM.prefix_token_id``,
``HFLM.max_length``, ``HFLM._loglikelihood_tokens``) and ``lm_eval/api/model.py``
(``TemplateLM._encode_pair``) at v0.4.13:

* **BOS.** ``add_bos_token`` defaults to None, which hands the choice to the tokenizer (its own
  ``add_special_tokens=True`` default: a Llama/Mistral tokenizer prepends BOS, GPT-2's does not);
  ``add_bos_token=true|false`` forces it; a text that already starts with the BOS string is
  never given a second one.
* **Context length.** ``(context_enc + continuation_enc)[-(max_length + 1):][:-1]`` is the
  model's input: a pair longer than the model's context is cut from the left, with a warning.

Pure Python (no torch), so the plugin can validate the setting without importing a backend.
"""

from __future__ import annotations

from typing import Any

from pytest_unlearn.errors import UnlearnError

#: The lm-evaluation-harness release whose HF scoring rules the mcq backend follows.
LM_EVAL_VERSION = "0.4.13"
#: lm-eval's ``HFLM._DEFAULT_MAX_LENGTH``, used when neither config nor tokenizer give a length.
DEFAULT_MAX_LENGTH = 2048
#: transformers' "no limit" ``model_max_length`` sentinel (int(1e30)).
_NO_LIMIT = 1000000000000000019884624838656


def parse_add_bos_token(value: Any, where: str) -> bool | None:
    """The ``add_bos_token`` setting: None ("auto", the tokenizer decides), True or False."""
    if value is None or value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise UnlearnError(f"{where}: setting 'add_bos_token' must be true, false or \"auto\", got {value!r}")


def tok_encode(tokenizer: Any, text: str, add_bos_token: bool | None) -> list[int]:
    """``HFLM.tok_encode`` for a causal LM: the tokenizer's default unless ``add_bos_token`` is
    set, and never a second BOS before a text that starts with one."""
    kwargs: dict[str, Any] = {}
    if add_bos_token is not None:
        kwargs["add_special_tokens"] = add_bos_token
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos):
        kwargs["add_special_tokens"] = False
    return list(tokenizer.encode(text, **kwargs))


def prefix_token_id(tokenizer: Any) -> int:
    """``HFLM.prefix_token_id``: what an empty context is scored after (BOS, else EOS)."""
    if getattr(tokenizer, "bos_token_id", None) is not None:
        return int(tokenizer.bos_token_id)
    return int(tokenizer.eos_token_id)


def encode_pair(
    tokenizer: Any, context: str, continuation: str, add_bos_token: bool | None
) -> tuple[list[int], list[int]]:
    """``TemplateLM._encode_pair`` with ``HFLM.tok_encode``: trailing spaces of the context move
    to the continuation; the continuation is ``encode(context + continuation)[len(encode(context)):]``
    (with BOS, both encodings start with it, so the split is unchanged)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    if not context:
        # HFLM.loglikelihood: an empty context is the prefix token, the continuation bare.
        return [prefix_token_id(tokenizer)], tok_encode(tokenizer, continuation, False)
    whole = tok_encode(tokenizer, context + continuation, add_bos_token)
    context_enc = tok_encode(tokenizer, context, add_bos_token)
    return context_enc, whole[len(context_enc) :]


def model_max_length(model: Any, tokenizer: Any) -> int:
    """``HFLM.max_length``: the config's ``n_positions``/``max_position_embeddings``/``n_ctx``,
    else the tokenizer's ``model_max_length`` unless it is transformers' no-limit sentinel, else 2048."""
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        if config is not None and hasattr(config, attr):
            return int(getattr(config, attr))
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None:
        return DEFAULT_MAX_LENGTH if limit == _NO_LIMIT else int(limit)
    return DEFAULT_MAX_LENGTH


def left_truncate(context: list[int], continuation: list[int], max_length: int) -> tuple[list[int], bool]:
    """The context of ``(context + continuation)[-(max_length + 1):]`` (the model then reads all
    but the last token: at most ``max_length``), and whether anything was cut."""
    excess = len(context) + len(continuation) - (max_length + 1)
    if excess <= 0:
        return context, False
    return context[min(excess, len(context)) :], True


def truncation_warning(suite: str, n_rows: int, max_length: int) -> str:
    """The one warning of a run whose contexts were cut (lm-eval warns per request)."""
    return (
        f"{suite}: {n_rows} question(s) longer than the model's context ({max_length} tokens) were cut "
        f"from the left, as lm-eval {LM_EVAL_VERSION} does; their scores see only the question's end"
    )
