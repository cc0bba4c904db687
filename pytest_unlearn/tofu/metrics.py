"""TOFU's metrics from per-sample losses and ROUGE, as locuslab/tofu computes them.

Definitions (``aggregate_eval_stat.py``, ``get_model_utility`` / ``get_forget_quality``; the
per-sample values as ``evaluate_util.py`` logs them, each loss the mean NLL per answer token):

- Probability: forget and retain: mean of exp(-avg_gt_loss); real authors and world facts:
  mean of p_true / (p_true + sum of p_perturbed), p = exp(-avg loss).
- ROUGE: mean ROUGE-L recall (Porter stemmer) of the greedy answer against the true answer.
- Truth ratio: R = exp(mean(perturbed losses) - paraphrased loss); forget: mean(min(R, 1/R));
  the others: mean(max(0, 1 - 1/R)).
- Model utility: ``scipy.stats.hmean`` of the 9 values {Prob., ROUGE, Truth Ratio} x {retain,
  real authors, world facts}.
- Forget quality: ``scipy.stats.ks_2samp`` p-value between the model's and the reference
  (retain) model's forget truth ratios R.

Pure numpy and scipy (imported on first use); no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pytest_unlearn.attacks import TokenStats, get_attack
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.registry import Measurement, metric, ratio_to_reference

#: Our task names, in TOFU's order, with the log file each one is in TOFU's aggregated log and the
#: name TOFU's aggregation gives its metrics ("Prob. Real Authors", "Truth Ratio Forget", ...).
TASKS = ("retain", "real_authors", "world_facts", "forget")
TOFU_FILES = {
    "retain": "eval_log.json",
    "real_authors": "eval_real_author_wo_options.json",
    "world_facts": "eval_real_world_wo_options.json",
    "forget": "eval_log_forget.json",
}
TOFU_NAMES = {"retain": "Retain", "real_authors": "Real Authors", "world_facts": "Real World", "forget": "Forget"}
UTILITY_TASKS = ("retain", "real_authors", "world_facts")
#: Tasks whose probability is normalised over the true and perturbed answers.
NORMALISED = ("real_authors", "world_facts")
KINDS = ("probability", "rouge", "truth_ratio")
TOFU_KIND_NAMES = {"probability": "Prob.", "rouge": "ROUGE", "truth_ratio": "Truth Ratio"}


@dataclass(frozen=True)
class TaskLog:
    """Per-sample values of one TOFU task (one row per question).

    ``gt_loss``: mean NLL per token of the true answer (TOFU's ``avg_gt_loss``);
    ``paraphrased_loss``: of the paraphrased answer on forget/retain, of the true answer on real
    authors/world facts (``avg_paraphrased_loss``); ``perturbed_loss``: (n, k), one per
    perturbed answer (``average_perturb_loss``); ``rouge``: ROUGE-L recall (``rougeL_recall``).
    """

    task: str
    indices: tuple[str, ...]
    gt_loss: np.ndarray
    paraphrased_loss: np.ndarray
    perturbed_loss: np.ndarray
    rouge: np.ndarray
    generations: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.indices)
        sizes = {
            "avg_gt_loss": len(self.gt_loss),
            "avg_paraphrased_loss": len(self.paraphrased_loss),
            "average_perturb_loss": len(self.perturbed_loss),
            "rougeL_recall": len(self.rouge),
        }
        bad = {k: v for k, v in sizes.items() if v != n}
        if bad:
            raise UnlearnError(f"TOFU {self.task} log: {n} samples but {bad}; every value needs one entry per sample")
        if self.perturbed_loss.ndim != 2 or (n and self.perturbed_loss.shape[1] == 0):
            raise UnlearnError(f"TOFU {self.task} log: average_perturb_loss needs a list of losses per sample")

    @property
    def n(self) -> int:
        return len(self.indices)

    def take(self, rows: np.ndarray) -> TaskLog:
        return replace(
            self,
            indices=tuple(self.indices[i] for i in rows),
            gt_loss=self.gt_loss[rows],
            paraphrased_loss=self.paraphrased_loss[rows],
            perturbed_loss=self.perturbed_loss[rows],
            rouge=self.rouge[rows],
            generations=None if self.generations is None else tuple(self.generations[i] for i in rows),
        )


def truth_ratios(log: TaskLog) -> np.ndarray:
    """R = exp(mean over perturbed answers of their loss - paraphrased loss), per sample."""
    return np.exp(log.perturbed_loss.mean(axis=-1) - log.paraphrased_loss)


def probability(log: TaskLog) -> float:
    if log.task in NORMALISED:
        true_p = np.exp(-log.gt_loss)
        all_p = np.concatenate([true_p[:, None], np.exp(-log.perturbed_loss)], axis=1).sum(-1)
        return float(np.mean(true_p / all_p))
    return float(np.mean(np.exp(-log.gt_loss)))


def rouge(log: TaskLog) -> float:
    return float(np.mean(log.rouge))


def truth_ratio(log: TaskLog) -> float:
    ratio = truth_ratios(log)
    if log.task == "forget":
        return float(np.mean(np.minimum(ratio, 1 / ratio)))
    return float(np.mean(np.maximum(0, 1 - 1 / ratio)))


KIND_FUNCTIONS = {"probability": probability, "rouge": rouge, "truth_ratio": truth_ratio}


def tofu_name(kind: str, task: str) -> str:
    return f"{TOFU_KIND_NAMES[kind]} {TOFU_NAMES[task]}"


def sub_metrics(logs: dict[str, TaskLog]) -> dict[str, float]:
    """The 12 values under TOFU's names, e.g. ``"Truth Ratio Forget"``, of the tasks present."""
    return {tofu_name(kind, task): KIND_FUNCTIONS[kind](logs[task]) for task in TASKS if task in logs for kind in KINDS}


def model_utility(logs: dict[str, TaskLog]) -> float:
    """``scipy.stats.hmean`` of the 9 retain / real-authors / world-facts values."""
    from scipy.stats import hmean

    missing = [t for t in UTILITY_TASKS if t not in logs]
    if missing:
        raise UnlearnError(f"model utility needs the {', '.join(missing)} log(s)")
    values = [KIND_FUNCTIONS[kind](logs[task]) for task in UTILITY_TASKS for kind in KINDS]
    return float(hmean(values))


def ks_test(model_forget: np.ndarray, reference_forget: np.ndarray) -> tuple[float, float]:
    """(p-value, statistic) of ``scipy.stats.ks_2samp`` on two sets of forget truth ratios."""
    from scipy.stats import ks_2samp

    result = ks_2samp(model_forget, reference_forget)
    return float(result.pvalue), float(result.statistic)


@dataclass(frozen=True)
class TofuInputs:
    """What every TOFU metric is computed from: the model's task logs and the reference's.

    ``reference`` holds the reference (retain) model's logs: its forget log for forget quality,
    the others for its model utility. A field is ``None`` until the backend computes it.
    """

    logs: dict[str, TaskLog] | None = None
    reference: dict[str, TaskLog] | None = None
    # Membership inference: token statistics of the forget answers and the holdout answers.
    mia: dict[str, list[TokenStats]] | None = None
    # open-unlearning's memorization metrics: per forget question, (argmax predictions, labels).
    memorization: list[tuple[list[int], list[int]]] | None = None
    # ... or their per-sample scores read from open-unlearning's TOFU_EVAL.json (--predictions).
    memorization_scores: dict[str, list[float]] | None = None
    # ... and their per-sample MIA scores (``mia_*``): attack -> "forget"/"holdout" -> scores.
    mia_scores: dict[str, dict[str, list[float]]] | None = None

    def resample(self, rng: np.random.Generator, requires: tuple[str, ...]) -> TofuInputs:
        """A bootstrap replicate: each task's questions drawn with replacement, separately
        for the model and the reference."""

        def draw(logs: dict[str, TaskLog] | None) -> dict[str, TaskLog] | None:
            if logs is None:
                return None
            return {t: log.take(rng.integers(0, log.n, size=log.n)) if log.n else log for t, log in logs.items()}

        changes: dict[str, Any] = {}
        if "tofu" in requires:
            changes["logs"] = draw(self.logs)
        if "reference" in requires:
            changes["reference"] = draw(self.reference)
        if "mia" in requires and self.mia is not None:
            changes["mia"] = {k: [v[i] for i in rng.integers(0, len(v), size=len(v))] for k, v in self.mia.items()}
        if "mia" in requires and self.mia_scores is not None:
            changes["mia_scores"] = {
                attack: {k: [v[i] for i in rng.integers(0, len(v), size=len(v))] for k, v in sets.items()}
                for attack, sets in self.mia_scores.items()
            }
        if "memorization" in requires and self.memorization:
            rows = rng.integers(0, len(self.memorization), size=len(self.memorization))
            changes["memorization"] = [self.memorization[i] for i in rows]
        if "memorization" in requires and self.memorization_scores:
            changes["memorization_scores"] = {
                k: [v[i] for i in rng.integers(0, len(v), size=len(v))] for k, v in self.memorization_scores.items()
            }
        return replace(self, **changes)

    def require_logs(self) -> dict[str, TaskLog]:
        if self.logs is None:
            raise UnlearnError("internal: the TOFU logs were not computed")
        return self.logs

    def require_task(self, task: str) -> TaskLog:
        logs = self.require_logs()
        if task not in logs:
            raise UnlearnError(f"no TOFU {task} log; supply its data or remove the check")
        return logs[task]

    def require_reference(self) -> dict[str, TaskLog]:
        if self.reference is None:
            raise UnlearnError("forget quality needs the retain model: pass --reference PATH")
        return self.reference


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise UnlearnError(f"unknown TOFU task {task!r}; use one of {', '.join(TASKS)}")


@metric(
    "tofu.probability",
    higher_is_better=False,
    unit="probability",
    requires=("tofu",),
    description="Mean exp(-answer loss) (forget/retain), normalised over the perturbed answers "
    "(real authors, world facts).",
)
def probability_metric(inputs: TofuInputs, *, task: str) -> Measurement:
    _check_task(task)
    log = inputs.require_task(task)
    return Measurement(probability(log), log.n, {"tofu_name": tofu_name("probability", task)})


@metric(
    "tofu.rouge",
    higher_is_better=False,
    unit="rouge-l recall",
    requires=("tofu",),
    description="Mean ROUGE-L recall (stemmed) of the greedy answer against the true answer.",
)
def rouge_metric(inputs: TofuInputs, *, task: str) -> Measurement:
    _check_task(task)
    log = inputs.require_task(task)
    return Measurement(rouge(log), log.n, {"tofu_name": tofu_name("rouge", task)})


@metric(
    "tofu.truth_ratio",
    higher_is_better=True,
    unit="score",
    requires=("tofu",),
    description="TOFU truth ratio: mean(min(R, 1/R)) on forget, mean(max(0, 1 - 1/R)) elsewhere.",
)
def truth_ratio_metric(inputs: TofuInputs, *, task: str) -> Measurement:
    _check_task(task)
    log = inputs.require_task(task)
    return Measurement(truth_ratio(log), log.n, {"tofu_name": tofu_name("truth_ratio", task)})


@metric(
    "tofu.model_utility",
    higher_is_better=True,
    unit="score",
    requires=("tofu",),
    description="Harmonic mean of Prob., ROUGE and Truth Ratio on retain, real authors and world facts.",
)
def model_utility_metric(inputs: TofuInputs) -> Measurement:
    logs = inputs.require_logs()
    value = model_utility(logs)
    n = sum(logs[t].n for t in UTILITY_TASKS)
    parts = {k: v for k, v in sub_metrics(logs).items() if "Forget" not in k}
    return Measurement(value, n, parts)


@metric(
    "tofu.model_utility_ratio",
    higher_is_better=True,
    unit="ratio",
    requires=("tofu", "reference"),
    description="Model utility divided by the reference (retain) model's model utility.",
)
def model_utility_ratio(inputs: TofuInputs) -> Measurement:
    logs = inputs.require_logs()
    reference = inputs.require_reference()
    try:
        ref_value = model_utility(reference)
    except UnlearnError as exc:
        raise UnlearnError(f"--reference: {exc}; give the reference's full logs") from None
    value = model_utility(logs)
    n = sum(logs[t].n for t in UTILITY_TASKS)
    return ratio_to_reference(value, ref_value, n, {"model_utility": value, "reference_model_utility": ref_value})


@metric(
    "tofu.forget_quality",
    higher_is_better=True,
    unit="p-value",
    requires=("tofu", "reference"),
    description="KS-test p-value between the model's and the retain model's forget truth ratios.",
)
def forget_quality_metric(inputs: TofuInputs) -> Measurement:
    forget = inputs.require_task("forget")
    reference = inputs.require_reference()
    if "forget" not in reference:
        raise UnlearnError("--reference has no forget log (eval_log_forget.json); evaluate it on the same forget split")
    pvalue, statistic = ks_test(truth_ratios(forget), truth_ratios(reference["forget"]))
    return Measurement(pvalue, forget.n, {"ks_statistic": statistic, "reference_n": reference["forget"].n})


MIA_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")


# -- open-unlearning's metrics (pytest_unlearn.openunlearning), on the same logs -----------------
@metric(
    "tofu.truth_ratio_ou",
    higher_is_better=True,
    unit="score",
    requires=("tofu",),
    description="open-unlearning's truth_ratio (false/true) under its aggregator: closer_to_1_better, "
    "true_better or prob_mean.",
)
def truth_ratio_ou_metric(inputs: TofuInputs, *, task: str, aggregator: str) -> Measurement:
    """open-unlearning ``memorization.py`` ``truth_ratio``: the paraphrased answer is the correct
    one, the perturbed answers the wrong ones (their ``tofu`` eval config)."""
    from pytest_unlearn import openunlearning as ou

    _check_task(task)
    log = inputs.require_task(task)
    value = ou.truth_ratio(log.paraphrased_loss, log.perturbed_loss, aggregator)
    return Measurement(value, log.n, {"aggregator": aggregator})


@metric(
    "tofu.probability_w_options",
    higher_is_better=False,
    unit="probability",
    requires=("tofu",),
    description="open-unlearning's normalised probability p_true / (p_true + sum p_wrong), averaged.",
)
def probability_w_options_metric(inputs: TofuInputs, *, task: str) -> Measurement:
    """open-unlearning ``memorization.py`` ``probability_w_options`` (TOFU's normalised
    probability plus their 1e-10)."""
    from pytest_unlearn import openunlearning as ou

    _check_task(task)
    log = inputs.require_task(task)
    return Measurement(ou.probability_w_options(np.exp(-log.gt_loss), np.exp(-log.perturbed_loss)), log.n, {})


def _read_scores(scores: dict[str, list[float]], name: str) -> list[float]:
    if not scores.get(name):
        raise UnlearnError(f"--predictions: the TOFU_EVAL.json has no {name}; run open-unlearning's eval with it")
    return scores[name]


def _memorization_rows(inputs: TofuInputs) -> list[tuple[list[int], list[int]]]:
    from pytest_unlearn import openunlearning as ou

    if inputs.memorization is None:
        raise UnlearnError("internal: the argmax predictions were not computed")
    return [ou.answer_tokens(p, lab) for p, lab in inputs.memorization]


@metric(
    "tofu.exact_memorization",
    higher_is_better=False,
    unit="share of tokens",
    requires=("memorization",),
    description="open-unlearning's exact memorization on the forget answers: share of tokens whose argmax "
    "is the label.",
)
def exact_memorization_metric(inputs: TofuInputs) -> Measurement:
    """open-unlearning ``memorization.py`` ``exact_memorization`` (mean over questions; an answer
    without tokens is left out, as their None)."""
    from pytest_unlearn import openunlearning as ou

    if inputs.memorization is None and inputs.memorization_scores is not None:
        values = _read_scores(inputs.memorization_scores, "exact_memorization")
        return Measurement(float(np.mean(values)), len(values), {"source": "TOFU_EVAL.json"})
    values = [v for p, lab in _memorization_rows(inputs) if (v := ou.exact_memorization(p, lab)) is not None]
    if not values:
        raise UnlearnError("exact memorization: no forget answer has a token to score")
    return Measurement(float(np.mean(values)), len(values), {})


@metric(
    "tofu.extraction_strength",
    higher_is_better=False,
    unit="score",
    requires=("memorization",),
    description="open-unlearning's extraction strength on the forget answers: 1 - k/T, k the first "
    "position from which greedy decoding reproduces the rest.",
)
def extraction_strength_metric(inputs: TofuInputs) -> Measurement:
    """open-unlearning ``memorization.py`` ``extraction_strength`` (mean over questions)."""
    from pytest_unlearn import openunlearning as ou

    if inputs.memorization is None and inputs.memorization_scores is not None:
        values = _read_scores(inputs.memorization_scores, "extraction_strength")
        return Measurement(float(np.mean(values)), len(values), {"source": "TOFU_EVAL.json"})
    rows = _memorization_rows(inputs)
    if not rows:
        raise UnlearnError("extraction strength: no forget answer to score")
    return Measurement(float(np.mean([ou.extraction_strength(p, lab) for p, lab in rows])), len(rows), {})


def mia_auc(members: list[TokenStats], nonmembers: list[TokenStats], attack: str, k: float = 0.4) -> float:
    """ROC AUC of an attack telling the forget answers (members, label 1) from the holdout answers,
    membership score = minus the attack's score: 1 when the model still knows the forget set,
    about 0.5 for a model that never saw it (open-unlearning's mia_* on forget vs holdout)."""
    import inspect

    from sklearn.metrics import roc_auc_score

    chosen = get_attack(attack, "attack")
    params = {"k": k} if "k" in inspect.signature(chosen.fn).parameters else {}
    # gradnorm and reference need inputs the backend computes only on request (see _compute_mia).
    scores = [-chosen.score(s, **params) for s in members + nonmembers]
    return float(roc_auc_score([1] * len(members) + [0] * len(nonmembers), scores))


@metric(
    "tofu.mia_auc",
    higher_is_better=False,
    unit="auc",
    requires=("mia",),
    description="Membership-inference ROC AUC of an attack on the forget answers against TOFU's holdout answers.",
)
def mia_auc_metric(inputs: TofuInputs, *, attack: str = "min_k", k: float = 0.4) -> Measurement:
    if inputs.mia is None and inputs.mia_scores is not None:
        from pytest_unlearn import openunlearning as ou
        from pytest_unlearn.attacks import OPEN_UNLEARNING_METRICS

        get_attack(attack, "attack")
        if attack not in inputs.mia_scores:
            raise UnlearnError(
                f"the --predictions TOFU_EVAL.json has no per-sample {OPEN_UNLEARNING_METRICS[attack]}: run "
                "open-unlearning's eval with it, or pass --model PATH"
            )
        forget, holdout = inputs.mia_scores[attack]["forget"], inputs.mia_scores[attack]["holdout"]
        # Their scores as they are (their k for min_k).
        value = ou.mia_auc_of_scores(forget, holdout)
        return Measurement(value, len(forget) + len(holdout), {"attack": attack, "source": "TOFU_EVAL.json"})
    if inputs.mia is None:
        raise UnlearnError("internal: the membership-inference statistics were not computed")
    members, nonmembers = inputs.mia["forget"], inputs.mia["holdout"]
    value = mia_auc(members, nonmembers, attack, k)
    return Measurement(value, len(members) + len(nonmembers), {"attack": attack, "k": k})


def aggregates(inputs: TofuInputs) -> dict[str, Any]:
    """``model_utility``, ``forget_quality``, ``ks_statistic`` and TOFU's 12 sub-metrics."""
    out: dict[str, Any] = dict.fromkeys(("model_utility", "forget_quality", "ks_statistic", "reference_model_utility"))
    if inputs.mia is not None:
        out["mia_auc"] = {a: mia_auc(inputs.mia["forget"], inputs.mia["holdout"], a) for a in MIA_ATTACKS}
    logs = inputs.logs
    if logs is None:
        return out
    out["details"] = sub_metrics(logs)
    if all(t in logs for t in UTILITY_TASKS):
        out["model_utility"] = model_utility(logs)
    reference = inputs.reference
    if reference is not None:
        if all(t in reference for t in UTILITY_TASKS):
            out["reference_model_utility"] = model_utility(reference)
        if "forget" in logs and "forget" in reference:
            pvalue, statistic = ks_test(truth_ratios(logs["forget"]), truth_ratios(reference["forget"]))
            out["forget_quality"], out["ks_statistic"] = pvalue, statistic
    return out
