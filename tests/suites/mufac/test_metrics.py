"""MUFAC / MUCAC metrics against numbers computed by hand or by the reference's code written out."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.mufac import metrics as mm


def reference_mia(forget_losses: np.ndarray, unseen_losses: np.ndarray) -> float:
    """cal_mia + simple_mia of ndb796/MachineUnlearning, line for line (global NumPy seed 42)."""
    from sklearn import linear_model, model_selection

    forget_losses = np.array(forget_losses, dtype=np.float64)
    np.random.seed(42)
    np.random.shuffle(forget_losses)
    forget_losses = forget_losses[: len(unseen_losses)]
    samples_mia = np.concatenate((unseen_losses, forget_losses)).reshape((-1, 1))
    labels_mia = [0] * len(unseen_losses) + [1] * len(forget_losses)
    attack_model = linear_model.LogisticRegression()
    cv = model_selection.StratifiedShuffleSplit(n_splits=10, random_state=0)
    return model_selection.cross_val_score(attack_model, samples_mia, labels_mia, cv=cv, scoring="accuracy").mean()


def test_separable_losses_give_attack_accuracy_one():
    forget = np.linspace(0.001, 0.01, 50)  # memorised: tiny losses
    unseen = np.linspace(2.0, 3.0, 50)
    assert mm.mia_accuracy(forget, unseen) == 1.0
    assert mm.forgetting_score(forget, unseen) == 0.5
    assert mm.mia_accuracies(forget[None], unseen[None])[0] == 1.0


def test_identical_losses_give_attack_accuracy_one_half():
    # One loss value for every image: the attack predicts one class; each stratified test fold
    # (10 % of 100 images) holds 5 of each, so every fold scores 5/10.
    losses = np.full(50, 0.7)
    assert mm.mia_accuracy(losses, losses) == 0.5
    assert mm.forgetting_score(losses, losses) == 0.0
    assert mm.mia_accuracies(losses[None], losses[None])[0] == 0.5


@pytest.mark.parametrize("seed", range(3))
def test_attack_matches_the_reference_code(seed):
    rng = np.random.default_rng(seed)
    forget = rng.exponential(0.4, size=int(rng.integers(30, 120)))  # more forget than unseen: cut, as cal_mia does
    unseen = rng.exponential(1.0, size=int(rng.integers(20, 60)))
    assert mm.mia_accuracy(forget, unseen) == reference_mia(forget, unseen)


def test_only_the_forget_losses_cal_mia_keeps_count():
    """cal_mia shuffles the forget losses with seed 42 and keeps len(unseen) of them: a change to
    a dropped one changes nothing, a change to a kept one may."""
    rng = np.random.default_rng(3)
    forget, unseen = rng.exponential(0.3, 40), rng.exponential(1.0, 20)
    order = np.arange(40)
    np.random.RandomState(42).shuffle(order)
    dropped, kept = order[20:], order[:20]
    changed = forget.copy()
    changed[dropped] = 100.0
    assert mm.mia_accuracy(changed, unseen) == mm.mia_accuracy(forget, unseen)
    assert mm.mia_accuracies(changed[None], unseen[None])[0] == mm.mia_accuracies(forget[None], unseen[None])[0]
    changed = forget.copy()
    changed[kept] = 100.0  # every kept forget loss far above the unseen ones: separable
    assert mm.mia_accuracies(changed[None], unseen[None])[0] == 1.0
    assert mm.mia_accuracy(changed, unseen) == 1.0


def test_exact_fit_agrees_with_scikit_learn_at_a_tight_tolerance():
    """The bootstrap's vectorised attack solves the same objective exactly: its accuracies are
    scikit-learn's at tol=1e-10 (the default tol=1e-4 stops a hair short, which can move a
    test-fold prediction on the boundary)."""
    from sklearn import linear_model, model_selection

    rng = np.random.default_rng(11)
    forget = rng.exponential(0.5, size=(3, 60))
    unseen = rng.exponential(1.0, size=(3, 50))
    fast = mm.mia_accuracies(forget, unseen)
    for row in range(3):
        f = forget[row].copy()
        np.random.RandomState(42).shuffle(f)
        x = np.concatenate((unseen[row], f[:50])).reshape(-1, 1)
        y = [0] * 50 + [1] * 50
        cv = model_selection.StratifiedShuffleSplit(n_splits=10, random_state=0)
        tight = linear_model.LogisticRegression(tol=1e-10, max_iter=10_000)
        assert fast[row] == pytest.approx(model_selection.cross_val_score(tight, x, y, cv=cv).mean(), abs=1e-12)


def test_nomus_of_the_papers_table():
    # README of ndb796/MachineUnlearning, MUFAC: Original test acc 0.5951, MIA (forgetting score)
    # 0.2136, Final Score 0.5839; Retrained 0.488, 0.0445, 0.6995. MUCAC multi-label: Original
    # 0.8852, 0.0568, 0.8858. 0.5 * 0.5951 + 0.5 * (1 - 2 * 0.2136) = 0.29755 + 0.2864 = 0.58395.
    assert mm.nomus(0.5951, 0.2136) == pytest.approx(0.58395)
    assert round(mm.nomus(0.488, 0.0445), 4) == 0.6995
    assert round(mm.nomus(0.8852, 0.0568), 4) == 0.8858
    assert mm.nomus(0.6, 0.1, weight=1.0) == pytest.approx(0.6)


def test_multilabel_accuracy_is_the_mean_of_the_attribute_accuracies():
    # male right 3/4, smiling 2/4, young 4/4: (0.75 + 0.5 + 1.0) / 3 = 0.75
    correct = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 0, 1]], dtype=bool)
    assert mm.accuracy(correct) == pytest.approx(0.75)
    assert mm.accuracy(np.array([True, False, True, True])) == 0.75


def inputs(test_correct, forget, unseen, original=None):
    def split(losses, correct):
        return mm.SplitScores(tuple(str(i) for i in range(len(losses))), np.asarray(losses), np.asarray(correct))

    scores = {
        "test": split(np.ones(len(test_correct)), test_correct),
        "forget": split(forget, np.ones(len(forget), dtype=bool)),
        "unseen": split(unseen, np.zeros(len(unseen), dtype=bool)),
    }
    orig = None if original is None else {"test": split(np.ones(len(original)), original)}
    return mm.FaceInputs(scores=scores, original=orig)


def test_registered_metrics_on_hand_made_inputs():
    forget = np.linspace(0.001, 0.01, 50)
    unseen = np.linspace(2.0, 3.0, 50)
    data = inputs(
        [True, True, False, True], forget, unseen, original=[True, True, True, True, True, False, False, False]
    )
    assert mm.accuracy_metric(data).value == 0.75
    assert mm.accuracy_metric(data, split="unseen").value == 0.0
    # 0.75 / (5/8) = 1.2
    assert mm.accuracy_ratio(data).value == pytest.approx(1.2)
    fs = mm.forgetting_score_metric(data)
    assert (fs.value, fs.n, fs.details["mia_accuracy"]) == (0.5, 100, 1.0)
    # 0.5 * 0.75 + 0.5 * (1 - 2 * 0.5) = 0.375
    assert mm.nomus_metric(data).value == pytest.approx(0.375)
    assert mm.aggregates(data)["nomus"] == pytest.approx(0.375)
    with pytest.raises(UnlearnError, match="--original-model"):
        mm.accuracy_ratio(inputs([True], forget, unseen))


def test_bootstrap_replicates_draw_the_same_rows_for_every_check():
    """Each check's bootstrap starts from the same seed; a replicate always draws test, forget,
    unseen in that order, so the forgetting-score and NoMUS checks fit the same attacks."""
    data = inputs([True] * 10, np.arange(20) / 10, np.arange(30) / 10, original=[True] * 7)
    a = data.resample(np.random.default_rng(5), ("scores",))
    b = data.resample(np.random.default_rng(5), ("scores", "original"))
    for split in ("test", "forget", "unseen"):
        assert np.array_equal(a.rows[split], b.rows[split])
    assert a.memo is data.memo  # the fits of one check's replicates serve the next check


def test_the_bundled_face_data_is_the_worlds():
    """suites/mufac-mini/data and suites/mucac-mini/data are what the builders write (rerun
    python -m fixtures.build mufac|mucac --write-data after changing them)."""
    from fixtures import mucac_world, mufac_world

    assert mufac_world.diff_data(mufac_world.DATA_DIR) == []
    assert mucac_world.diff_data(mucac_world.DATA_DIR) == []
