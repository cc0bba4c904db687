"""The multiple-choice suites' settings (wmdp, and any set declared as a manifest)."""

from __future__ import annotations

from pytest_unlearn.engines.language_models import MAX_BATCH_TOKENS
from pytest_unlearn.settings import COMMON, Setting

SETTINGS: tuple[Setting, ...] = (
    *COMMON,
    Setting("template", str, None, "prompt of one question: {question} and {choices[0]} .. {choices[N]}"),
    Setting("labels", list, None, "the answer labels, one per choice (e.g. A, B, C, D)"),
    Setting("target_delimiter", str, " ", "what separates the prompt from each label"),
    Setting("strip_question", bool, True, "strip white space around each question"),
    Setting("mmlu_shots", int, 0, "few-shot examples of each MMLU prompt", minimum=0),
    Setting("subsets", dict, None, "each subset: its file name in the data folder and its description", own_check=True),
    Setting(
        "add_bos_token",
        bool,
        None,
        'lm-eval 0.4.13\'s BOS rule: unset or "auto", the tokenizer decides; true or false forces it',
        own_check=True,
    ),
    MAX_BATCH_TOKENS,
)
