"""open-unlearning's TOFU result files written from our logs: ``TOFU_EVAL.json`` (every metric as
``{"agg_value": x, "value_by_index": {index: {...}}}``) and ``TOFU_SUMMARY.json``
(``{metric: agg_value}``), as ``src/evals/tofu.py`` (``TOFUEvaluator``) saves them, under the
metric names of its ``configs/eval/tofu.yaml``. What we write reads back through
:func:`pytest_unlearn.tofu.logs.load_logs` (``--predictions`` / ``--reference``) to the same
scorecard. Pure numpy.

Per metric (open-unlearning ``src/evals/metrics/memorization.py``, ``utils.py``):
``*_Q_A_Prob``/``*_PARA_Prob``: ``prob = exp(-avg_loss)``; ``*_PERT_Prob``: lists per index;
``*_ROUGE``: ``rougeL_recall``; ``forget_truth_ratio`` (``closer_to_1_better``) and
``retain/ra/wf_Truth_Ratio`` (``true_better``): ``score = p_wrong / (p_correct + 1e-10)``;
``ra/wf_Q_A_Prob_normalised``: ``probability_w_options``; ``model_utility``: ``scipy.stats.hmean``
of the nine retain/ra/wf values; ``forget_quality``: ``ks_2samp`` of ``1/(tr + 1e-10)`` against
the reference's (``utils.py`` ``get_forget_quality``); ``exact_memorization`` /
``extraction_strength``: per-index ``score``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pytest_unlearn import openunlearning as ou
from pytest_unlearn.tofu.logs import OPEN_UNLEARNING_KEYS
from pytest_unlearn.tofu.metrics import TaskLog

EVAL_FILE = "TOFU_EVAL.json"
SUMMARY_FILE = "TOFU_SUMMARY.json"
#: open-unlearning's prefix and truth-ratio metric name per task.
PREFIX = {"forget": "forget", "retain": "retain", "real_authors": "ra", "world_facts": "wf"}
TRUTH_RATIO = {"forget": "forget_truth_ratio", "retain": "retain_Truth_Ratio", "real_authors": "ra_Truth_Ratio",
               "world_facts": "wf_Truth_Ratio"}  # fmt: skip
#: The nine values open-unlearning's model_utility takes the harmonic mean of.
UTILITY = ("retain_Q_A_Prob", "retain_Q_A_ROUGE", "retain_Truth_Ratio", "ra_Q_A_Prob_normalised", "ra_Q_A_ROUGE",
           "ra_Truth_Ratio", "wf_Q_A_Prob_normalised", "wf_Q_A_ROUGE", "wf_Truth_Ratio")  # fmt: skip


def _prob_entry(indices: tuple[str, ...], losses: np.ndarray) -> dict[str, Any]:
    probs = np.exp(-losses)
    by_index = {
        i: {"prob": p.tolist(), "avg_loss": v.tolist()} if np.ndim(v) else {"prob": float(p), "avg_loss": float(v)}
        for i, p, v in zip(indices, probs, losses)
    }
    return {"agg_value": float(np.mean(probs)), "value_by_index": by_index}


def dump_tofu_eval(
    logs: dict[str, TaskLog],
    reference: dict[str, TaskLog] | None = None,
    memorization: dict[str, list[float]] | None = None,
    mia: dict[str, dict[str, list[float]]] | None = None,
) -> dict[str, Any]:
    """``TOFU_EVAL.json`` of ``logs`` (and forget quality against ``reference``'s forget log)."""
    out: dict[str, Any] = {}
    for task, (true_key, base_key, pert_key, rouge_key) in OPEN_UNLEARNING_KEYS.items():
        if task not in logs:
            continue
        log = logs[task]
        out[true_key] = _prob_entry(log.indices, log.gt_loss)
        if base_key != true_key:
            out[base_key] = _prob_entry(log.indices, log.paraphrased_loss)
        out[pert_key] = _prob_entry(log.indices, log.perturbed_loss)
        out[rouge_key] = {
            "agg_value": float(np.mean(log.rouge)),
            "value_by_index": {i: {"rougeL_recall": float(r)} for i, r in zip(log.indices, log.rouge)},
        }
        tr = ou.truth_ratio_values(log.paraphrased_loss, log.perturbed_loss)
        aggregator = "closer_to_1_better" if task == "forget" else "true_better"
        out[TRUTH_RATIO[task]] = {
            "agg_value": ou.truth_ratio(log.paraphrased_loss, log.perturbed_loss, aggregator),
            "value_by_index": {i: {"score": float(v)} for i, v in zip(log.indices, tr)},
        }
        if task in ("real_authors", "world_facts"):
            correct, wrong = np.exp(-log.gt_loss), np.exp(-log.perturbed_loss)
            normalised = correct / (correct + wrong.sum(-1) + 1e-10)
            out[f"{PREFIX[task]}_Q_A_Prob_normalised"] = {
                "agg_value": ou.probability_w_options(correct, wrong),
                "value_by_index": {i: {"prob": float(v)} for i, v in zip(log.indices, normalised)},
            }
    if all(name in out for name in UTILITY):
        from scipy.stats import hmean

        out["model_utility"] = {"agg_value": float(hmean([out[name]["agg_value"] for name in UTILITY]))}
    if reference is not None and "forget" in logs and "forget" in reference:
        from scipy.stats import ks_2samp

        own = ou.truth_ratio_values(logs["forget"].paraphrased_loss, logs["forget"].perturbed_loss)
        ref = ou.truth_ratio_values(reference["forget"].paraphrased_loss, reference["forget"].perturbed_loss)
        out["forget_quality"] = {"agg_value": float(ks_2samp(1 / (own + 1e-10), 1 / (ref + 1e-10)).pvalue)}
    for name, scores in (memorization or {}).items():
        indices = logs["forget"].indices if "forget" in logs else tuple(map(str, range(len(scores))))
        out[name] = {
            "agg_value": float(np.mean(scores)),
            "value_by_index": {i: {"score": float(s)} for i, s in zip(indices, scores)},
        }
    if mia:
        from pytest_unlearn.attacks import OPEN_UNLEARNING_METRICS

        for attack, sets in mia.items():
            out[OPEN_UNLEARNING_METRICS[attack]] = ou.mia_entry(sets["forget"], sets["holdout"])
    return dict(sorted(out.items())) if mia else out


def summary(evals: dict[str, Any]) -> dict[str, float]:
    """``TOFU_SUMMARY.json``: every metric's ``agg_value``."""
    return {name: entry["agg_value"] for name, entry in evals.items()}


def encode(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, indent=4) + "\n").encode("utf-8")
