"""Seeded bootstrap intervals shared by every suite."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def bootstrap_ci(
    statistic: Callable[[np.random.Generator], float],
    *,
    samples: int,
    seed: int,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile interval of ``statistic(rng)`` over ``samples`` bootstrap replicates.

    ``statistic`` draws one replicate with the generator it is given (resampling its own data
    with replacement) and returns the metric on it. The generator is seeded afresh for every
    check, so a check's interval does not depend on which other checks ran before it (the same
    scorecard with or without pytest-xdist). Replicates that are undefined (NaN) are dropped;
    ``None`` when none is defined or ``samples`` is 0.
    """
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


def resample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap replicate of a 1-d array (same size, drawn with replacement)."""
    if values.size == 0:
        return values
    return values[rng.integers(0, values.size, size=values.size)]


def finite_or_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
