"""MUFAC / MUCAC metrics from per-image losses and correctness, as ndb796/MachineUnlearning computes them.

Definitions (the notebooks' ``evaluation``/``test``, ``compute_losses``, ``simple_mia`` and
``cal_mia``; Choi & Na, "Towards Machine Unlearning Benchmarks: Forgetting the Personal
Identities in Facial Recognition Systems"):

- Accuracy: MUFAC, top-1 accuracy over the 8 age classes; MUCAC, the mean over the attributes
  (male, smiling, young) of each attribute's accuracy, sigmoid > 0.5.
- Per-image loss: MUFAC, cross-entropy; MUCAC, ``BCEWithLogitsLoss`` averaged over the attributes.
- Membership-inference accuracy (``cal_mia``): with NumPy's legacy generator seeded 42, shuffle
  the forget losses and keep the first len(unseen); the attack is
  ``LogisticRegression()`` on the 1-d losses (unseen = 0, forget = 1), scored by
  ``cross_val_score`` over ``StratifiedShuffleSplit(n_splits=10, random_state=0)``; its accuracy
  is the mean over the 10 splits.
- Forgetting score: |MIA accuracy - 0.5| (0 = the attack cannot tell forget from unseen).
- NoMUS: lambda * test accuracy + (1 - lambda) * (1 - 2 * forgetting score), lambda = 0.5.

Pure numpy and scikit-learn (imported on first use); no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.registry import Measurement, metric, ratio_to_reference

#: The reference's attack settings: cal_mia's seed, simple_mia's splits and random_state.
MIA_SEED = 42
MIA_SPLITS = 10
MIA_RANDOM_STATE = 0
NOMUS_WEIGHT = 0.5


def mia_scores(
    forget_losses: np.ndarray,
    unseen_losses: np.ndarray,
    *,
    seed: int = MIA_SEED,
    n_splits: int = MIA_SPLITS,
    random_state: int = MIA_RANDOM_STATE,
) -> np.ndarray:
    """The attack's accuracy on each of the ``n_splits`` cross-validation splits (``cal_mia`` +
    ``simple_mia``): forget losses shuffled (legacy NumPy generator, ``seed``) and cut to the
    number of unseen losses, then a logistic regression on the loss alone."""
    from sklearn import linear_model, model_selection

    forget = np.array(forget_losses, dtype=np.float64)
    unseen = np.asarray(unseen_losses, dtype=np.float64)
    if forget.size == 0 or unseen.size == 0:
        raise UnlearnError("the membership-inference attack needs forget and unseen images")
    # np.random.seed(seed); np.random.shuffle(x) draws exactly what RandomState(seed).shuffle(x) does.
    np.random.RandomState(seed).shuffle(forget)
    forget = forget[: len(unseen)]
    samples = np.concatenate((unseen, forget)).reshape((-1, 1))
    members = np.array([0] * len(unseen) + [1] * len(forget))
    cv = model_selection.StratifiedShuffleSplit(n_splits=n_splits, random_state=random_state)
    try:
        return model_selection.cross_val_score(
            linear_model.LogisticRegression(), samples, members, cv=cv, scoring="accuracy"
        )
    except ValueError as exc:
        # Too few images for a stratified split with a member and a non-member on each side.
        raise UnlearnError(
            f"the membership-inference attack cannot split {len(unseen)} unseen and {len(forget)} forget losses "
            f"{n_splits} ways ({exc})"
        ) from None


def _logistic_fit(x: np.ndarray, t: np.ndarray, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Exact minimisers (w, b) of scikit-learn's ``LogisticRegression()`` objective (L2, C = 1,
    intercept unpenalised) on 1-d inputs, one problem per row of ``x`` (rows, n) with labels ``t``
    (n,): damped Newton steps, vectorised over the rows. lbfgs stops within its tolerance of the
    same optimum, so the predictions agree (tests/suites/mufac/test_metrics.py checks them)."""
    rows = x.shape[0]
    w, b = np.zeros(rows), np.zeros(rows)

    def objective(w: np.ndarray, b: np.ndarray) -> np.ndarray:
        z = x * w[:, None] + b[:, None]
        # log(1 + exp(z)) - t z, summed: the logistic loss with labels 0/1.
        return np.sum(np.logaddexp(0.0, z) - t * z, axis=1) + 0.5 * w**2

    current = objective(w, b)
    for _ in range(iterations):
        z = x * w[:, None] + b[:, None]
        p = 0.5 * (1 + np.tanh(0.5 * z))  # the sigmoid, without overflow
        r = p - t
        gw, gb = np.sum(r * x, axis=1) + w, np.sum(r, axis=1)
        h = p * (1 - p)
        hww, hwb, hbb = np.sum(h * x * x, axis=1) + 1.0, np.sum(h * x, axis=1), np.sum(h, axis=1) + 1e-12
        det = hww * hbb - hwb**2
        dw, db = (hbb * gw - hwb * gb) / det, (hww * gb - hwb * gw) / det
        step = np.ones(rows)
        for _ in range(30):  # halve each row's step until its objective does not increase
            trial = objective(w - step * dw, b - step * db)
            worse = trial > current + 1e-12
            if not worse.any():
                break
            step = np.where(worse, step / 2, step)
        w, b = w - step * dw, b - step * db
        current = objective(w, b)
        if np.max(np.abs(step * dw)) < 1e-12 and np.max(np.abs(step * db)) < 1e-12:
            break
    return w, b


def mia_accuracies(
    forget_losses: np.ndarray,
    unseen_losses: np.ndarray,
    *,
    seed: int = MIA_SEED,
    n_splits: int = MIA_SPLITS,
    random_state: int = MIA_RANDOM_STATE,
) -> np.ndarray:
    """:func:`mia_accuracy` of many (forget, unseen) loss sets at once, rows of (r, n_forget) and
    (r, n_unseen) arrays (bootstrap replicates): the same shuffle, cut and splits, the same
    attack objective solved exactly by :func:`_logistic_fit`. Cheaper by far than fitting
    scikit-learn's model 10 times per replicate."""
    from sklearn import model_selection

    forget = np.asarray(forget_losses, dtype=np.float64)
    unseen = np.asarray(unseen_losses, dtype=np.float64)
    # RandomState(seed).shuffle moves x as it moves arange(n): the same permutation for every row.
    order = np.arange(forget.shape[1])
    np.random.RandomState(seed).shuffle(order)
    forget = forget[:, order][:, : unseen.shape[1]]
    samples = np.concatenate((unseen, forget), axis=1)
    members = np.array([0] * unseen.shape[1] + [1] * forget.shape[1])
    cv = model_selection.StratifiedShuffleSplit(n_splits=n_splits, random_state=random_state)
    scores = []
    for train, test in cv.split(np.zeros((len(members), 1)), members):
        w, b = _logistic_fit(samples[:, train], members[train].astype(np.float64))
        predicted = (samples[:, test] * w[:, None] + b[:, None]) > 0
        scores.append(np.mean(predicted == members[test].astype(bool), axis=1))
    return np.mean(scores, axis=0)


def mia_accuracy(forget_losses: np.ndarray, unseen_losses: np.ndarray, **params: Any) -> float:
    return float(np.mean(mia_scores(forget_losses, unseen_losses, **params)))


def forgetting_score(forget_losses: np.ndarray, unseen_losses: np.ndarray, **params: Any) -> float:
    """|MIA accuracy - 0.5|."""
    return abs(0.5 - mia_accuracy(forget_losses, unseen_losses, **params))


def nomus(test_accuracy: float, forgetting: float, weight: float = NOMUS_WEIGHT) -> float:
    """lambda * accuracy + (1 - lambda) * (1 - 2 * forgetting score)."""
    return weight * test_accuracy + (1 - weight) * (1 - 2 * forgetting)


def accuracy(correct: np.ndarray) -> float:
    """Top-1 accuracy of (n,) flags; of (n, k) flags the mean of the k per-attribute accuracies."""
    if correct.size == 0:
        return float("nan")
    if correct.ndim == 2:
        return float(np.mean(correct.mean(axis=0)))
    return float(np.mean(correct))


@dataclass(frozen=True)
class SplitScores:
    """Per-image values of one split: ids, the loss, and whether each prediction is right
    ((n,) for a class, (n, k) for k attributes)."""

    ids: tuple[str, ...]
    losses: np.ndarray
    correct: np.ndarray

    @property
    def n(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> SplitScores:
        return SplitScores(tuple(self.ids[i] for i in rows), self.losses[rows], self.correct[rows])


@dataclass(frozen=True)
class FaceInputs:
    """What every metric is computed from: the model's scores per split (test, forget, unseen)
    and the original model's (its test split, for the accuracy ratio); None until computed."""

    scores: dict[str, SplitScores] | None = None
    original: dict[str, SplitScores] | None = None
    mia: dict[str, int] = field(default_factory=lambda: {"seed": MIA_SEED, "n_splits": MIA_SPLITS,
                                                          "random_state": MIA_RANDOM_STATE})  # fmt: skip
    # Attack accuracy per resample (the forget and unseen rows drawn): the forgetting-score and
    # NoMUS checks draw the same resamples (each seeded afresh), so each attack is fitted once.
    memo: dict[bytes, float] = field(default_factory=dict, compare=False)
    rows: dict[str, np.ndarray] | None = None

    def resample(self, rng: np.random.Generator, requires: tuple[str, ...]) -> FaceInputs:
        """A bootstrap replicate: each split's images drawn with replacement, always in the
        order test, forget, unseen (then the original's test), whatever the check needs."""
        changes: dict[str, Any] = {}
        if self.scores is not None:
            rows = {k: rng.integers(0, s.n, size=s.n) for k, s in self.scores.items()}
            changes["scores"] = {k: s.take(rows[k]) for k, s in self.scores.items()}
            changes["rows"] = rows
        if self.original is not None and "original" in requires:
            changes["original"] = {k: s.take(rng.integers(0, s.n, size=s.n)) for k, s in self.original.items()}
        return replace(self, **changes)

    def split(self, name: str) -> SplitScores:
        if self.scores is None or name not in self.scores:
            raise UnlearnError(f"internal: the {name} scores were not computed")
        return self.scores[name]

    def attack_accuracy(self) -> float:
        forget, unseen = self.split("forget"), self.split("unseen")
        # The full sets (no resample) are keyed b"": the checks and the aggregates share one fit.
        key = b"" if self.rows is None else self.rows["forget"].tobytes() + b"|" + self.rows["unseen"].tobytes()
        if key not in self.memo:
            self.memo[key] = mia_accuracy(forget.losses, unseen.losses, **self.mia)
        return self.memo[key]


def _split_name(split: str) -> str:
    if split not in ("test", "forget", "unseen"):
        raise UnlearnError(f"unknown split {split!r}; use test, forget or unseen")
    return split


@metric(
    "mufac.accuracy",
    higher_is_better=True,
    unit="accuracy",
    requires=("scores",),
    description="Accuracy on a split (MUFAC: top-1 age class; MUCAC: mean of the attribute accuracies).",
)
def accuracy_metric(inputs: FaceInputs, *, split: str = "test") -> Measurement:
    scores = inputs.split(_split_name(split))
    return Measurement(accuracy(scores.correct), scores.n, {"split": split})


@metric(
    "mufac.accuracy_ratio",
    higher_is_better=True,
    unit="ratio",
    requires=("scores", "original"),
    description="Test accuracy divided by the original model's (--original-model) test accuracy.",
)
def accuracy_ratio(inputs: FaceInputs) -> Measurement:
    test = inputs.split("test")
    if inputs.original is None:
        raise UnlearnError("the accuracy ratio needs the model before unlearning: pass --original-model PATH")
    own, original = accuracy(test.correct), accuracy(inputs.original["test"].correct)
    return ratio_to_reference(own, original, test.n, {"test_accuracy": own, "original_test_accuracy": original})


@metric(
    "mufac.forgetting_score",
    higher_is_better=False,
    unit="score",
    requires=("scores",),
    description="|accuracy - 0.5| of a logistic-regression attack on losses telling forget from unseen images.",
)
def forgetting_score_metric(inputs: FaceInputs) -> Measurement:
    forget, unseen = inputs.split("forget"), inputs.split("unseen")
    attack = inputs.attack_accuracy()
    return Measurement(abs(0.5 - attack), forget.n + unseen.n, {"mia_accuracy": attack})


@metric(
    "mufac.nomus",
    higher_is_better=True,
    unit="score",
    requires=("scores",),
    description="NoMUS: lambda * test accuracy + (1 - lambda) * (1 - 2 * forgetting score), lambda = 0.5.",
)
def nomus_metric(inputs: FaceInputs, *, weight: float = NOMUS_WEIGHT) -> Measurement:
    if not 0 <= weight <= 1:
        raise UnlearnError(f"NoMUS weight (lambda) must be in [0, 1], got {weight}")
    test, forget, unseen = inputs.split("test"), inputs.split("forget"), inputs.split("unseen")
    acc = accuracy(test.correct)
    forgetting = abs(0.5 - inputs.attack_accuracy())
    value = nomus(acc, forgetting, weight)
    details = {"test_accuracy": acc, "forgetting_score": forgetting, "lambda": weight}
    return Measurement(value, test.n + forget.n + unseen.n, details)


def aggregates(inputs: FaceInputs) -> dict[str, Any]:
    """Accuracy per split, MIA accuracy, forgetting score, NoMUS (and the original's test accuracy)."""
    out: dict[str, Any] = dict.fromkeys(("test_accuracy", "forget_accuracy", "unseen_accuracy", "mia_accuracy",
                                         "forgetting_score", "nomus", "original_test_accuracy"))  # fmt: skip
    if inputs.scores is not None:
        for split in ("test", "forget", "unseen"):
            out[f"{split}_accuracy"] = accuracy(inputs.scores[split].correct)
        try:
            attack = inputs.attack_accuracy()
        except UnlearnError:
            attack = None
        if attack is not None:
            out["mia_accuracy"] = attack
            out["forgetting_score"] = abs(0.5 - attack)
            out["nomus"] = nomus(out["test_accuracy"], out["forgetting_score"])
    if inputs.original is not None:
        out["original_test_accuracy"] = accuracy(inputs.original["test"].correct)
    return out
