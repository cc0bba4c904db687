"""The vectorised bootstrap gives the intervals of the replicate-by-replicate loop it replaced.

``loop_bootstrap_ci`` is the loop as it was in ``pytest_unlearn/stats.py`` (kept verbatim); each
SemEval metric's interval through the evaluation (``batched`` replicates) is compared with the
loop over the metric's own function on ``SemevalInputs.resample``, with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_unlearn.registry import METRICS
from pytest_unlearn.semeval import metrics as sm
from pytest_unlearn.stats import bootstrap_ci, resample, resample_indices
from pytest_unlearn.user import user_check


def loop_bootstrap_ci(
    statistic: Callable[[np.random.Generator], float],
    *,
    samples: int,
    seed: int,
    level: float = 0.95,
) -> tuple[float, float] | None:
    # Verbatim: pytest_unlearn.stats.bootstrap_ci before it was vectorised.
    if samples <= 0:
        return None
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng) for _ in range(samples)], dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return (float(low), float(high))


def semeval_inputs(rng: np.random.Generator, *, sizes: tuple[int, ...], ties: bool) -> sm.SemevalInputs:
    text = {}
    groups = [
        (split, task, kind)
        for split in ("forget", "retain")
        for task in ("Task1", "Task2", "Task3")
        for kind in ("regurgitation", "knowledge")
    ]
    for i, key in enumerate(groups):
        n = sizes[i % len(sizes)]
        # Knowledge scores are 0/1 (a group of zeros makes the harmonic mean 0 in some replicates).
        text[key] = rng.integers(0, 2, n).astype(float) if key[2] == "knowledge" else rng.random(n)
    # Rounded losses give tied scores, which the AUC counts one half.
    members, nonmembers = rng.normal(3.0, 0.5, 37), rng.normal(3.2, 0.5, 29)
    if ties:
        members, nonmembers = members.round(1), nonmembers.round(1)
    return sm.SemevalInputs(text, members, nonmembers, rng.integers(0, 2, 41).astype(float))


SEMEVAL_CHECKS = [
    ("semeval.subtask", {"split": "forget", "task": "Task2", "kind": "knowledge"}),
    ("semeval.subtask", {"split": "retain", "task": "Task1", "kind": "regurgitation"}),
    ("semeval.task_aggregate", {}),
    ("semeval.mia_auc", {}),
    ("semeval.mia_score", {}),
    ("semeval.mmlu_accuracy", {}),
    ("semeval.final_score", {}),
]


@pytest.mark.parametrize(("name", "params"), SEMEVAL_CHECKS, ids=[c[0] + str(c[1]) for c in SEMEVAL_CHECKS])
@pytest.mark.parametrize("ties", [False, True])
def test_semeval_intervals_equal_the_loops(name, params, ties):
    metric = METRICS.get(name)
    assert metric.batched is not None
    for seed, sizes in [(0, (5, 3, 8)), (7, (1, 12)), (11, (20,))]:
        inputs = semeval_inputs(np.random.default_rng(100 + seed), sizes=sizes, ties=ties)
        old = loop_bootstrap_ci(
            lambda rng, inputs=inputs: metric(inputs.resample(rng, metric.requires), **params).value,
            samples=200,
            seed=seed,
        )
        new = bootstrap_ci(
            lambda rng: pytest.fail("the batched form must be used"),
            samples=200,
            seed=seed,
            batched=lambda rng, count, inputs=inputs: metric.batched(
                inputs.resample_batch(rng, metric.requires, count), **params
            ),
        )
        assert new == pytest.approx(old, abs=1e-12)


def test_every_replicate_value_equals_the_metric_on_the_loops_replicate():
    inputs = semeval_inputs(np.random.default_rng(5), sizes=(4, 9), ties=True)
    for name, params in SEMEVAL_CHECKS:
        metric = METRICS.get(name)
        rng = np.random.default_rng(3)
        looped = [metric(inputs.resample(rng, metric.requires), **params).value for _ in range(50)]
        batched = metric.batched(inputs.resample_batch(np.random.default_rng(3), metric.requires, 50), **params)
        assert batched == pytest.approx(looped, abs=1e-12), name


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=6),
    samples=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_resample_indices_draws_what_the_loop_of_resample_draws(sizes, samples, seed):
    arrays = [np.arange(n) for n in sizes]
    rng = np.random.default_rng(seed)
    looped = [[resample(a, rng) for a in arrays] for _ in range(samples)]
    drawn = resample_indices(sizes, np.random.default_rng(seed), samples)
    for i, a in enumerate(arrays):
        assert np.array_equal(a[drawn[i]], np.stack([row[i] for row in looped]).reshape(samples, a.size))


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(0, 1), min_size=1, max_size=50), seed=st.integers(0, 2**32 - 1))
def test_user_check_intervals_equal_the_loop(values, seed):
    data = np.asarray(values)
    result = user_check(
        "mine", float(data.mean()), ">=", 0.0, n=None, samples=values, nodeid="t", suite_checks=(), seed=seed,
        bootstrap_samples=300,
    )  # fmt: skip
    old = loop_bootstrap_ci(
        lambda rng: float(data[rng.integers(0, data.size, data.size)].mean()), samples=300, seed=seed
    )
    assert result.ci95 == pytest.approx(old, abs=1e-12)
