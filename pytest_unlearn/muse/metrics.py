"""MUSE's metrics from per-sample scores, as swj0419/muse_bench's ``eval.py`` computes them.

Definitions (``metrics/verbmem.py``, ``metrics/knowmem.py``, ``metrics/privleak.py``,
``metrics/logger.py``, ``constants.py``):

- VerbMem: mean ROUGE-L F1 (``rouge_score``, no stemmer) x 100 of the greedy 128-token
  continuation of each forget prompt against the reference continuation cut to its first 128
  tokens (``mean_rougeL``: ``score['rougeL'].fmeasure``).
- KnowMem: mean ROUGE-L F1 x 100 of the greedy 32-token answer to each question (after the
  in-context shots), cut at the first "\\n\\n", "\\nQuestion" or "Question:".
- PrivLeak: (AUC - AUC_retrain) / AUC_retrain x 100, AUC of the Min-40% score telling holdout
  (label 1) from forget (label 0) texts (``forget_holdout_Min-40%``): about 0 after an exact
  retrain, towards -100 when the forget set is still more likely than unseen text
  (under-unlearning), large and positive when it became less likely (over-unlearning).

open-unlearning (``src/evals/metrics/utils.py``, ``privacy.py``, ``configs/eval/muse_metrics``)
scores the same generations with the Porter stemmer against the whole reference, strips the
answers, and takes AUC_retrain = 0.5 when no retain model's logs are given: ``muse_variant``.
Pure numpy and scikit-learn (imported on first use); no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from pytest_unlearn.attacks import TokenStats, get_attack
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.registry import Measurement, metric, ratio_to_reference
from pytest_unlearn.stats import resample

VARIANTS = ("muse", "open-unlearning")
CORPORA = ("news", "books")
#: ``constants.AUC_RETRAIN[corpus]["forget_holdout_Min-40%"]`` of muse_bench: the retrained
#: Llama-2 models' AUC, PrivLeak's denominator when no --reference is given.
PUBLISHED_AUC_RETRAIN = {"news": 0.47719999999999996, "books": 0.5392999999999999}
#: open-unlearning's ``configs/eval/muse_metrics/privleak.yaml``: ``ref_value: 0.5``.
OPEN_UNLEARNING_AUC_RETRAIN = 0.5
#: Where both cut a KnowMem answer (``get_prefix_before_words_occur`` / ``stopwords``).
STOPWORDS = ("\n\n", "\nQuestion", "Question:")
MIN_K = 0.4  # ``forget_holdout_Min-40%``


@lru_cache(maxsize=2)
def _scorer(stem: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)


def rouge_l_f1(reference: str, candidate: str, *, stem: bool) -> float:
    """ROUGE-L F1 of ``candidate`` against ``reference`` (``rouge_score``; MUSE: no stemmer)."""
    return float(_scorer(stem).score(reference, candidate)["rougeL"].fmeasure)


def cut_answer(text: str, variant: str) -> str:
    """A KnowMem answer up to the first stop word: MUSE splits at each in turn and keeps the
    first part (the same as cutting at the earliest); open-unlearning also strips it."""
    for word in STOPWORDS:
        text = text.split(word)[0]
    return text.strip() if variant == "open-unlearning" else text


def knowmem_prompt(shots: list[tuple[str, str]], question: str) -> str:
    """MUSE's in-context prompt: ``Question: q\\nAnswer: a\\n\\n`` per shot, then the question."""
    head = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in shots)
    return head + f"Question: {question}\nAnswer: "


def min_k_scores(stats: list[TokenStats], k: float = MIN_K) -> np.ndarray:
    """MUSE's ``Min-40%`` of each text: minus the mean of its lowest 40% token log-probs (the
    shared ``min_k`` attack; at least one token where MUSE's ``int(n * 0.4)`` would be 0)."""
    attack = get_attack("min_k", "--setting mink_k")
    return np.array([attack.score(s, k=k) for s in stats], dtype=float)


def forget_holdout_auc(forget: np.ndarray, holdout: np.ndarray) -> float:
    """MUSE's ``forget_holdout_Min-40%``: ROC AUC with the holdout texts labelled members (1),
    the forget texts non-members (0), scored by minus the Min-K value (``sweep(ppl, y)``:
    ``roc_curve(y, -ppl)``). About 0.5 for a model that never saw either set."""
    from sklearn.metrics import roc_auc_score

    if len(forget) == 0 or len(holdout) == 0:
        raise UnlearnError("PrivLeak needs at least one forget and one holdout text")
    labels = [0] * len(forget) + [1] * len(holdout)
    return float(roc_auc_score(labels, -np.concatenate([forget, holdout])))


def privleak(auc: float, auc_retrain: float, variant: str = "muse") -> float:
    """(AUC - AUC_retrain) / AUC_retrain x 100 (open-unlearning adds 1e-10 to the denominator)."""
    if variant == "open-unlearning":
        return (auc - auc_retrain) / (auc_retrain + 1e-10) * 100
    if auc_retrain == 0:
        return float("nan")  # undefined (a bootstrap replicate may draw it): dropped from intervals
    return (auc - auc_retrain) / auc_retrain * 100


@dataclass(frozen=True)
class MuseInputs:
    """Per-sample values every MUSE metric is computed from (``None`` until computed).

    ``verbmem``: ROUGE-L F1 per forget prompt; ``knowmem``: ROUGE-L F1 per question of "forget"
    and "retain"; ``original_retain``: the original (target) model's retain KnowMem scores (or
    one value from ``--setting knowmem_retain_target``, in [0, 1]); ``privleak``: Min-K scores of
    the "forget" and "holdout" texts; ``reference_privleak``: the retrained model's, when it was
    given; ``auc_retrain``: PrivLeak's denominator and ``auc_retrain_source`` where it came from.
    """

    variant: str = "muse"
    verbmem: np.ndarray | None = None
    knowmem: dict[str, np.ndarray] | None = None
    original_retain: np.ndarray | None = None
    original_source: str | None = None
    privleak: dict[str, np.ndarray] | None = None
    reference_privleak: dict[str, np.ndarray] | None = None
    auc_retrain: float | None = None
    auc_retrain_source: str | None = None
    # open-unlearning's memorization metrics over the verbmem forget passages: per passage,
    # (argmax predictions, labels) ...
    memorization: list[tuple[list[int], list[int]]] | None = None
    # ... or their per-passage scores read from an open-unlearning MUSE_EVAL.json (--predictions).
    memorization_scores: dict[str, list[float]] | None = None
    # Any registered attack on the PrivLeak texts (``muse.mia_auc``): per text of "forget" and
    # "holdout", its token statistics (with the gradient norm or the reference's log-probs when
    # the attack needs them).
    mia: dict[str, list[TokenStats]] | None = None
    # ... or, from an open-unlearning MUSE_EVAL.json (--predictions), its mia_* per-sample scores:
    # attack -> "forget" / "holdout" -> scores.
    mia_scores: dict[str, dict[str, np.ndarray]] | None = None

    def resample(self, rng: np.random.Generator, requires: tuple[str, ...]) -> MuseInputs:
        """A bootstrap replicate: every set drawn with replacement, *paired* across models: the
        original model's retain questions are the model's draw, the retrained model's forget and
        holdout texts the model's draw (the models answer the same items, so a model compared
        with itself gives the same value in every replicate)."""
        draws: dict[tuple[str, str], np.ndarray] = {}

        def take(kind: str, split: str, values: np.ndarray) -> np.ndarray:
            if values.size == 0:
                return values
            rows = draws.setdefault((kind, split), rng.integers(0, values.size, size=values.size))
            return values[rows]

        def draw(kind: str, sets: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
            return None if sets is None else {split: take(kind, split, v) for split, v in sets.items()}

        changes: dict[str, Any] = {}
        if "verbmem" in requires and self.verbmem is not None:
            changes["verbmem"] = resample(self.verbmem, rng)
        if "knowmem" in requires:
            changes["knowmem"] = draw("knowmem", self.knowmem)
        if "original" in requires and self.original_retain is not None and self.original_retain.size > 1:
            changes["original_retain"] = take("knowmem", "retain", self.original_retain)
        if "privleak" in requires:
            changes["privleak"] = draw("privleak", self.privleak)
        if "reference" in requires:
            changes["reference_privleak"] = draw("privleak", self.reference_privleak)
        if "memorization" in requires and self.memorization:
            rows = rng.integers(0, len(self.memorization), size=len(self.memorization))
            changes["memorization"] = [self.memorization[i] for i in rows]
        if "memorization" in requires and self.memorization_scores:
            changes["memorization_scores"] = {
                k: [v[i] for i in rng.integers(0, len(v), size=len(v))] for k, v in self.memorization_scores.items()
            }
        if "mia" in requires and self.mia_scores is not None:
            changes["mia_scores"] = {
                attack: {k: resample(v, rng) for k, v in sets.items()} for attack, sets in self.mia_scores.items()
            }
        if "mia" in requires and self.mia is not None:
            changes["mia"] = {
                split: [rows[i] for i in rng.integers(0, len(rows), size=len(rows))] if rows else rows
                for split, rows in self.mia.items()
            }
        return replace(self, **changes)

    def model_auc(self) -> float:
        if self.privleak is None:
            raise UnlearnError("internal: the PrivLeak scores were not computed")
        return forget_holdout_auc(self.privleak["forget"], self.privleak["holdout"])

    def retrain_auc(self) -> float:
        if self.reference_privleak is not None:
            return forget_holdout_auc(self.reference_privleak["forget"], self.reference_privleak["holdout"])
        if self.auc_retrain is None:
            raise UnlearnError("internal: PrivLeak's AUC_retrain was not set")
        return self.auc_retrain

    def knowmem_split(self, split: str) -> np.ndarray:
        if split not in ("forget", "retain"):
            raise UnlearnError(f"unknown KnowMem split {split!r}; use forget or retain")
        if self.knowmem is None:
            raise UnlearnError("internal: the KnowMem scores were not computed")
        return self.knowmem[split]


def _mean100(values: np.ndarray) -> float:
    return float(np.mean(values) * 100) if values.size else float("nan")


@metric(
    "muse.verbmem",
    higher_is_better=False,
    unit="rouge-l f1 x100",
    requires=("verbmem",),
    description="VerbMem: mean ROUGE-L F1 x 100 of the greedy continuation of each forget prompt.",
)
def verbmem_metric(inputs: MuseInputs) -> Measurement:
    if inputs.verbmem is None:
        raise UnlearnError("internal: the VerbMem scores were not computed")
    return Measurement(_mean100(inputs.verbmem), int(inputs.verbmem.size), {"variant": inputs.variant})


@metric(
    "muse.knowmem_forget",
    higher_is_better=False,
    unit="rouge-l f1 x100",
    requires=("knowmem",),
    description="KnowMem on the forget questions: mean ROUGE-L F1 x 100 of the in-context answers.",
)
def knowmem_forget_metric(inputs: MuseInputs) -> Measurement:
    scores = inputs.knowmem_split("forget")
    return Measurement(_mean100(scores), int(scores.size), {"variant": inputs.variant})


@metric(
    "muse.knowmem_retain",
    higher_is_better=True,
    unit="rouge-l f1 x100",
    requires=("knowmem",),
    description="Utility preserved: KnowMem on the retain questions (higher is better).",
)
def knowmem_retain_metric(inputs: MuseInputs) -> Measurement:
    scores = inputs.knowmem_split("retain")
    return Measurement(_mean100(scores), int(scores.size), {"variant": inputs.variant})


@metric(
    "muse.knowmem_retain_ratio",
    higher_is_better=True,
    unit="ratio",
    requires=("knowmem", "original"),
    description="KnowMem on retain divided by the original (target) model's: the utility kept.",
)
def knowmem_retain_ratio(inputs: MuseInputs) -> Measurement:
    scores = inputs.knowmem_split("retain")
    if inputs.original_retain is None:
        raise UnlearnError("internal: the original model's KnowMem was not computed")
    model, original = _mean100(scores), _mean100(inputs.original_retain)
    details = {"knowmem_retain": model, "original_knowmem_retain": original, "original": inputs.original_source}
    return ratio_to_reference(model, original, int(scores.size), details)


@metric(
    "muse.privleak",
    higher_is_better=False,
    unit="|% of AUC_retrain|",
    requires=("privleak", "reference"),
    description="|PrivLeak|: |AUC - AUC_retrain| / AUC_retrain x 100 of Min-40% forget vs holdout.",
)
def privleak_metric(inputs: MuseInputs) -> Measurement:
    auc, retrain = inputs.model_auc(), inputs.retrain_auc()
    signed = privleak(auc, retrain, inputs.variant)
    assert inputs.privleak is not None
    n = int(inputs.privleak["forget"].size + inputs.privleak["holdout"].size)
    details: dict[str, Any] = {
        "privleak": signed,
        "auc": auc,
        "auc_retrain": retrain,
        "auc_retrain_source": inputs.auc_retrain_source,
    }
    if retrain == 0:
        details["note"] = "AUC_retrain is 0: PrivLeak divides by it and is undefined"
    return Measurement(abs(signed), n, details)


def _memorization_scores(inputs: MuseInputs, name: str) -> list[float]:
    """Per-passage scores of open-unlearning's ``name`` (``memorization.py``): from the argmax
    rows (their last label dropped, ``tokenwise_vocab_logprobs``), or read from MUSE_EVAL.json.
    A passage without a label is left out of exact memorization (their None) and scores 0 in
    extraction strength (theirs)."""
    from pytest_unlearn import openunlearning as ou

    if inputs.memorization is None and inputs.memorization_scores is not None:
        if not inputs.memorization_scores.get(name):
            raise UnlearnError(f"--predictions: the MUSE_EVAL.json has no {name}; run open-unlearning's eval with it")
        return inputs.memorization_scores[name]
    if inputs.memorization is None:
        raise UnlearnError("internal: the argmax predictions were not computed")
    rows = [ou.answer_tokens(p, lab) for p, lab in inputs.memorization]
    if name == "exact_memorization":
        return [v for p, lab in rows if (v := ou.exact_memorization(p, lab)) is not None]
    return [ou.extraction_strength(p, lab) for p, lab in rows]


@metric(
    "muse.exact_memorization",
    higher_is_better=False,
    unit="share of tokens",
    requires=("memorization",),
    description="open-unlearning's exact memorization on the verbmem forget passages: share of tokens whose "
    "argmax is the label.",
)
def exact_memorization_metric(inputs: MuseInputs) -> Measurement:
    """open-unlearning ``memorization.py`` ``exact_memorization`` over ``MUSE_forget_verbmem``
    (``configs/eval/muse_metrics/exact_memorization.yaml``), mean over passages."""
    values = _memorization_scores(inputs, "exact_memorization")
    if not values:
        raise UnlearnError("exact memorization: no verbmem passage has a token to score")
    return Measurement(float(np.mean(values)), len(values), {})


@metric(
    "muse.extraction_strength",
    higher_is_better=False,
    unit="score",
    requires=("memorization",),
    description="open-unlearning's extraction strength on the verbmem forget passages: 1 - k/T, k the first "
    "position from which greedy decoding reproduces the rest.",
)
def extraction_strength_metric(inputs: MuseInputs) -> Measurement:
    """open-unlearning ``memorization.py`` ``extraction_strength`` over ``MUSE_forget_verbmem``
    (``configs/eval/muse_metrics/extraction_strength.yaml``), mean over passages."""
    values = _memorization_scores(inputs, "extraction_strength")
    if not values:
        raise UnlearnError("extraction strength: no verbmem passage to score")
    return Measurement(float(np.mean(values)), len(values), {})


def mia_auc(forget: list[TokenStats], holdout: list[TokenStats], attack: str, k: float = MIN_K) -> float:
    """ROC AUC of an attack telling the forget texts (members, label 1) from the holdout texts,
    membership score = minus the attack's score (open-unlearning ``mia/utils.py`` ``mia_auc``
    on MUSE's ``privleak`` forget and holdout sets): about 1 when the model still knows the
    forget texts, about 0.5 when it treats them as unseen. PrivLeak's AUC is the other way
    round (holdout labelled 1): with ``min_k`` this is 1 minus that AUC."""
    import inspect

    from sklearn.metrics import roc_auc_score

    chosen = get_attack(attack, "attack")
    if not forget or not holdout:
        raise UnlearnError("the MIA AUC needs at least one forget and one holdout text")
    params = {"k": k} if "k" in inspect.signature(chosen.fn).parameters else {}
    scores = [-chosen.score(s, **params) for s in forget + holdout]
    return float(roc_auc_score([1] * len(forget) + [0] * len(holdout), scores))


@metric(
    "muse.mia_auc",
    higher_is_better=False,
    unit="auc",
    requires=("mia",),
    description="Membership-inference ROC AUC of an attack (loss, zlib, min_k, min_k_plus_plus, gradnorm, "
    "reference) on MUSE's forget texts against its holdout texts.",
)
def mia_auc_metric(inputs: MuseInputs, *, attack: str = "min_k", k: float = MIN_K) -> Measurement:
    if inputs.mia is None and inputs.mia_scores is not None:
        from pytest_unlearn import openunlearning as ou

        if attack not in inputs.mia_scores:
            raise UnlearnError(f"the --predictions MUSE_EVAL.json has no per-sample scores of the {attack} attack")
        forget, holdout = inputs.mia_scores[attack]["forget"], inputs.mia_scores[attack]["holdout"]
        # Their scores as they are (their k for min_k).
        value = ou.mia_auc_of_scores(forget, holdout)
        return Measurement(value, len(forget) + len(holdout), {"attack": attack, "source": "MUSE_EVAL.json"})
    if inputs.mia is None:
        raise UnlearnError("internal: the membership-inference statistics were not computed")
    value = mia_auc(inputs.mia["forget"], inputs.mia["holdout"], attack, k)
    return Measurement(value, len(inputs.mia["forget"]) + len(inputs.mia["holdout"]), {"attack": attack, "k": k})


def aggregates(inputs: MuseInputs) -> dict[str, Any]:
    """MUSE's four numbers under its names (``verbmem_f``, ``knowmem_f``, ``knowmem_r``,
    ``privleak``, signed) and the AUCs they come from, of what was computed."""
    out: dict[str, Any] = {"variant": inputs.variant}
    if inputs.verbmem is not None:
        out["verbmem_f"] = _mean100(inputs.verbmem)
    if inputs.knowmem is not None:
        out["knowmem_f"] = _mean100(inputs.knowmem["forget"])
        out["knowmem_r"] = _mean100(inputs.knowmem["retain"])
    if inputs.original_retain is not None:
        out["original_knowmem_r"] = _mean100(inputs.original_retain)
    if inputs.privleak is not None:
        out["auc"] = inputs.model_auc()
        if inputs.reference_privleak is not None or inputs.auc_retrain is not None:
            out["auc_retrain"] = inputs.retrain_auc()
            out["auc_retrain_source"] = inputs.auc_retrain_source
            out["privleak"] = privleak(out["auc"], out["auc_retrain"], inputs.variant)
    return out
