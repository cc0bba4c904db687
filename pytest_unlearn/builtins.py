"""The built-in registry entries, all lazy: importing this module imports nothing heavy.

Third-party packages add theirs through entry points (``pytest_unlearn.metrics``,
``pytest_unlearn.suites``, ``pytest_unlearn.backends``, ``pytest_unlearn.loaders``,
``pytest_unlearn.judges``) with the same ``"module:attribute"`` values.
"""

from __future__ import annotations

from pytest_unlearn.registry import BACKENDS, JUDGES, METRICS, SUITES

# module -> {metric name: attribute}
_METRICS = {
    "pytest_unlearn.semeval.metrics": {
        "semeval.subtask": "subtask",
        "semeval.task_aggregate": "task_aggregate_metric",
        "semeval.mia_auc": "mia_auc_metric",
        "semeval.mia_score": "mia_score_metric",
        "semeval.mmlu_accuracy": "mmlu_accuracy",
        "semeval.final_score": "final_score_metric",
    },
    "pytest_unlearn.genmu.metrics": {
        "genmu.forget": "forget",
        "genmu.retain": "retain",
        "genmu.adjacent": "adjacent",
        "genmu.err": "err_metric",
        "genmu.weight_change_ratio": "weight_change_ratio",
        "genmu.clip_score": "clip_score_metric",
        "genmu.clip_score_drop": "clip_score_drop",
    },
}

for _module, _entries in _METRICS.items():
    for _name, _attr in _entries.items():
        METRICS.register(_name, f"{_module}:{_attr}", replace=True)

SUITES.register("semeval", "pytest_unlearn.suites:SEMEVAL", replace=True)
SUITES.register("genmu", "pytest_unlearn.suites:GENMU", replace=True)
SUITES.register("genmu-mini", "pytest_unlearn.suites:GENMU_MINI", replace=True)
BACKENDS.register("semeval", "pytest_unlearn.semeval.evaluation:SemevalBackend", replace=True)
BACKENDS.register("genmu", "pytest_unlearn.genmu.evaluation:GenmuBackend", replace=True)
JUDGES.register("clip", "pytest_unlearn.genmu.judges:clip_judge", replace=True)
