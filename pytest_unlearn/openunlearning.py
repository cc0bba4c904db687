"""open-unlearning's per-sample metrics, under open-unlearning's names (locuslab/open-unlearning).

Transcribed from ``src/evals/metrics/memorization.py`` (commit 2db47ec) and
``src/evals/metrics/utils.py`` (commit 5420d43); pure numpy, no torch. The model passes that
feed them are in :mod:`pytest_unlearn.openunlearning_passes`.

Where their definition differs from TOFU's own (``pytest_unlearn.tofu.metrics``):

* **Truth ratio orientation.** open-unlearning's ``truth_ratio`` is false/true:
  ``tr = p_wrong / (p_correct + 1e-10)`` with ``p = exp(-avg_loss)`` and the wrong answers'
  average losses averaged first (``aggregate_to_1D``); TOFU's R is true/false
  (``exp(mean perturbed loss - paraphrased loss)``), so ``tr`` = 1/R up to the 1e-10.
* **Dropped last token.** ``exact_memorization`` and ``extraction_strength`` read
  ``tokenwise_vocab_logprobs``, which drops the last labelled token (``[:-1]``, "to ignore eos
  prediction"): with their chat template that token is EOS; on a world whose answers end
  without EOS it is the answer's own last token. We drop it as they do (``drop_last=True``).
* **Extraction strength's no-match case.** Their loop leaves ``k = T - 1`` when no suffix
  matches, so a sample with no correct suffix scores ``1/T``, not 0. We keep that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_unlearn.errors import UnlearnError

#: The truth-ratio aggregators, by open-unlearning's ``aggregator`` name (``prob_mean`` as
#: issue 27 defines it: the mean of p_correct / (p_correct + p_wrong)).
TRUTH_RATIO_AGGREGATORS = ("closer_to_1_better", "true_better", "prob_mean")


def exact_memorization(predictions: Sequence[int], labels: Sequence[int]) -> float | None:
    """Share of answer tokens whose argmax prediction equals the label (``memorization.py``,
    ``exact_memorization._exact_memorization``); None for an answer without tokens (theirs too)."""
    preds, labs = np.asarray(predictions), np.asarray(labels)
    if len(labs) == 0:
        return None
    return float(np.sum(preds == labs) / len(labs))


def extraction_strength(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """``1 - k/T`` with ``k`` the first position from which every argmax prediction equals the
    label (``memorization.py``, ``extraction_strength._extraction_strength``); ``k`` stays
    ``T - 1`` when no suffix matches, and an empty answer scores 0, as theirs."""
    preds, labs = np.asarray(predictions), np.asarray(labels)
    total = len(labs)
    if total == 0:
        return 0.0
    k = 0
    for k in range(total):
        if np.array_equal(preds[k:], labs[k:]):
            break
    return 1 - k / total


def answer_tokens(
    predictions: Sequence[int], labels: Sequence[int], drop_last: bool = True
) -> tuple[list[int], list[int]]:
    """The (prediction, label) pairs open-unlearning scores: every answer token but the last
    (``utils.py``, ``tokenwise_vocab_logprobs``: ``actual_indices[:-1]``)."""
    if drop_last:
        return list(predictions[:-1]), list(labels[:-1])
    return list(predictions), list(labels)


def _wrong_mean(wrong_avg_losses: np.ndarray) -> np.ndarray:
    wrong = np.asarray(wrong_avg_losses, dtype=float)
    return wrong.mean(axis=tuple(range(1, wrong.ndim))) if wrong.ndim > 1 else wrong  # aggregate_to_1D


def truth_ratio_values(correct_avg_loss: Sequence[float], wrong_avg_losses: np.ndarray) -> np.ndarray:
    """Per-sample ``p_wrong / (p_correct + 1e-10)`` (``memorization.py``, ``truth_ratio``)."""
    correct_p = np.exp(-np.asarray(correct_avg_loss, dtype=float))
    wrong_p = np.exp(-_wrong_mean(wrong_avg_losses))
    return wrong_p / (correct_p + 1e-10)


def truth_ratio(correct_avg_loss: Sequence[float], wrong_avg_losses: np.ndarray, aggregator: str) -> float:
    """open-unlearning's ``truth_ratio`` metric under one of its aggregators:
    ``closer_to_1_better`` mean(min(tr, 1/(tr + 1e-10))) (forget), ``true_better``
    mean(max(0, 1 - tr)) (retain and the others), ``prob_mean`` mean(p_c / (p_c + p_w))."""
    if aggregator == "prob_mean":
        correct_p = np.exp(-np.asarray(correct_avg_loss, dtype=float))
        wrong_p = np.exp(-_wrong_mean(wrong_avg_losses))
        return float(np.mean(correct_p / (correct_p + wrong_p + 1e-10)))
    tr = truth_ratio_values(correct_avg_loss, wrong_avg_losses)
    if aggregator == "closer_to_1_better":
        return float(np.mean(np.minimum(tr, 1 / (tr + 1e-10))))
    if aggregator == "true_better":
        return float(np.mean(np.maximum(0, 1 - tr)))
    raise UnlearnError(
        f"truth ratio aggregator {aggregator!r}: unknown; use one of {', '.join(TRUTH_RATIO_AGGREGATORS)}"
    )


def probability_w_options(correct_prob: Sequence[float], wrong_probs: np.ndarray) -> float:
    """The normalised probability ``p_true / (p_true + sum p_wrong + 1e-10)``, averaged
    (``memorization.py``, ``probability_w_options``); ``p = exp(-avg_loss)`` per answer."""
    correct = np.asarray(correct_prob, dtype=float)
    wrong = np.asarray(wrong_probs, dtype=float)
    wrong_sum = wrong.sum(axis=tuple(range(1, wrong.ndim))) if wrong.ndim > 1 else wrong
    return float(np.mean(correct / (correct + wrong_sum + 1e-10)))


def score_entry(values: Sequence[float] | np.ndarray) -> dict[str, object]:
    """One metric's per-sample ``score`` values as their ``save_logs`` writes them: the mean as
    ``agg_value`` and each value under its index."""
    scores = [float(v) for v in values]
    return {
        "agg_value": float(np.mean(scores)) if scores else None,
        "value_by_index": {str(i): {"score": v} for i, v in enumerate(scores)},
    }


def mia_auc_of_scores(forget: Sequence[float] | np.ndarray, holdout: Sequence[float] | np.ndarray) -> float:
    """``mia/utils.py`` ``mia_auc``: ROC AUC with the forget samples labelled 0 and the holdout
    samples 1, scored by the attack's score as it is (higher: less member-like). It is the same
    number as a membership AUC with the forget samples labelled 1 and scored by minus the score
    (``tofu.mia_auc``, ``muse.mia_auc``)."""
    from sklearn.metrics import roc_auc_score

    scores = np.concatenate([np.asarray(forget, dtype=float), np.asarray(holdout, dtype=float)])
    return float(roc_auc_score([0] * len(forget) + [1] * len(holdout), scores))


def mia_entry(forget: Sequence[float] | np.ndarray, holdout: Sequence[float] | np.ndarray) -> dict[str, object]:
    """A ``mia_*`` metric as their ``mia_auc`` returns it: both sets' per-sample scores and the AUC."""
    auc = mia_auc_of_scores(forget, holdout)
    return {"forget": score_entry(forget), "holdout": score_entry(holdout), "auc": auc, "agg_value": auc}
