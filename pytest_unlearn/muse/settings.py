"""The MUSE suite's settings (``python -m pytest_unlearn settings muse``); the backend checks them
in its own words."""

from __future__ import annotations

from pytest_unlearn.engines.language_models import MAX_BATCH_TOKENS
from pytest_unlearn.settings import COMMON, Setting

SETTINGS: tuple[Setting, ...] = (
    *COMMON,
    Setting("corpus", str, "news", "news or books", own_check=True),
    Setting("muse_variant", str, "muse", "muse (muse_bench) or open-unlearning", own_check=True),
    Setting("verbmem_max_new_tokens", int, 128, "VerbMem continuation length", minimum=1, own_check=True),
    Setting("knowmem_max_new_tokens", int, 32, "KnowMem answer length", minimum=1, own_check=True),
    Setting("mink_k", float, 0.4, "PrivLeak's Min-K% share", own_check=True),
    Setting("gradnorm_p", float, 2.0, "the p of the gradnorm attack's gradient norm (muse.mia_auc checks)", minimum=1),
    Setting("knowmem_retain_target", float, None, "the retrained model's KnowMem on the retain set", own_check=True),
    Setting("auc_retrain", float, None, "the retrained model's Min-K% AUC (PrivLeak's reference)", own_check=True),
    Setting(
        "write_openunlearning",
        bool,
        False,
        "also write open-unlearning's MUSE_EVAL.json and MUSE_SUMMARY.json",
        own_check=True,
    ),
    MAX_BATCH_TOKENS,
)
