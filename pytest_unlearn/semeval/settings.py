"""The SemEval-2025 Task 4 suite's settings (``python -m pytest_unlearn settings semeval``)."""

from __future__ import annotations

from pytest_unlearn.engines.language_models import MAX_BATCH_TOKENS
from pytest_unlearn.settings import COMMON, Setting

SETTINGS: tuple[Setting, ...] = (
    Setting("max_new_tokens", int, 256, "greedy generation length (the official scorer's 256)", minimum=1),
    Setting("mmlu_shots", int, 5, "few-shot examples of each MMLU prompt", minimum=0),
    *COMMON,
    Setting(
        "mia_attack",
        str,
        "loss",
        "membership-inference attack: loss, zlib, min_k, min_k_plus_plus, gradnorm, reference (needs --reference)",
        own_check=True,
    ),
    Setting("gradnorm_p", float, 2.0, "the p of the gradnorm attack's gradient norm", minimum=1),
    Setting(
        "mia_k",
        float,
        0.4,
        "k of the min_k attacks (share of lowest log-probs)",
        minimum=0,
        maximum=1,
        above=True,
    ),
    MAX_BATCH_TOKENS,
    Setting("truncate_to_context", bool, False, "cut MMLU prompts longer than the model's context instead of refusing"),
)
