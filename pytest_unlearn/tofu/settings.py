"""The TOFU suite's settings (``python -m pytest_unlearn settings tofu``); the backend checks them
in its own words."""

from __future__ import annotations

from pytest_unlearn.engines.language_models import MAX_BATCH_TOKENS
from pytest_unlearn.settings import COMMON, Setting

SETTINGS: tuple[Setting, ...] = (
    *COMMON,
    Setting("forget_split", str, "forget10", "forget01, forget05 or forget10", own_check=True),
    Setting("model_family", str, None, "prompt tags of [settings.families] to use", own_check=True),
    Setting("question_start_tag", str, None, "overrides the family's tag", own_check=True),
    Setting("question_end_tag", str, None, "overrides the family's tag", own_check=True),
    Setting("answer_tag", str, None, "overrides the family's tag", own_check=True),
    Setting("max_new_tokens", int, 200, "greedy answer length", minimum=1, own_check=True),
    Setting("max_length", int, 200, "question + answer tokens kept for the losses", minimum=1, own_check=True),
    Setting("ds_size", int, 300, "questions of each file evaluated (0: all)", minimum=0, own_check=True),
    Setting("families", dict, None, "prompt tags per model family", own_check=True),
    Setting(
        "write_openunlearning",
        bool,
        False,
        "also write TOFU_EVAL.json and TOFU_SUMMARY.json in open-unlearning's layout",
        own_check=True,
    ),
    Setting("gradnorm_p", float, 2.0, "the p of the GradNorm attack's gradient norm", minimum=1, own_check=True),
    MAX_BATCH_TOKENS,
)
