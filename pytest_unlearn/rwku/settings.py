"""The RWKU suite's settings (``python -m pytest_unlearn settings rwku``); the backend checks the
ones marked ``own_check`` in its own words."""

from __future__ import annotations

from pytest_unlearn.engines.language_models import MAX_BATCH_TOKENS
from pytest_unlearn.settings import COMMON, Setting

SETTINGS: tuple[Setting, ...] = (
    *COMMON,
    Setting(
        "targets",
        str,
        None,
        "the targets scored: all (default), a count N (the first N, as RWKU's batches 1-10, 1-20...) or names",
        own_check=True,
    ),
    Setting("max_new_tokens", int, 30, "answer length (RWKU: 30)", minimum=1),
    Setting("mia_k", float, 0.2, "Min-K%++'s share of tokens (RWKU: 0.2)", minimum=0, maximum=1, above=True),
    Setting("use_prompt", bool, False, "RWKU's in-context unlearning instruction before every probe and passage"),
    MAX_BATCH_TOKENS,
)
