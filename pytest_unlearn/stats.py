"""Seeded bootstrap intervals shared by every suite."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def bootstrap_ci(
    statistic: Callable[[np.random.Generator], float],
    *,
    samples: int,
    seed: int,
    level: float = 0.95,
    batched: Callable[[np.random.Generator, int], np.ndarray] | None = None,
) -> tuple[float, float] | None:
    """Percentile interval of ``statistic(rng)`` over ``samples`` bootstrap replicates.

    ``statistic`` draws one replicate with the generator it is given (resampling its own data
    with replacement) and returns the metric on it. The generator is seeded afresh for every
    check, so a check's interval does not depend on which other checks ran before it (the same
    scorecard with or without pytest-xdist). Replicates that are undefined (NaN) are dropped;
    ``None`` when none is defined or ``samples`` is 0.

    ``batched(rng, samples)``, when given, returns every replicate's value at once, drawing from
    the generator exactly what ``samples`` calls of ``statistic`` would, in the same order (so
    the interval is the same, computed with array operations instead of a Python loop).
    """
    if samples <= 0:
        return None
    rng = np.random.default_rng(seed)
    if batched is not None:
        values = np.asarray(batched(rng, samples), dtype=float).reshape(samples)
    else:
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


def resample_indices(sizes: Sequence[int], rng: np.random.Generator, samples: int) -> list[np.ndarray]:
    """``samples`` replicates of :func:`resample` applied to arrays of ``sizes`` in turn: one
    ``[samples, size]`` index array per size, the same indices a loop of replicates draws
    (replicate by replicate, each array in turn; an empty array draws nothing).

    One call with an array of bounds: the generator draws its elements in order from the one
    stream that consecutive calls share, so the values are those of the loop (``tests/
    test_properties.py`` compares them with the loop kept verbatim).
    """
    bounds = np.concatenate([np.full(n, n, dtype=np.int64) for n in sizes if n > 0] or [np.empty(0, np.int64)])
    drawn = rng.integers(0, np.broadcast_to(bounds, (samples, bounds.size))) if bounds.size else None
    out, start = [], 0
    for n in sizes:
        if n > 0:
            out.append(drawn[:, start : start + n])  # type: ignore[index]
            start += n
        else:
            out.append(np.empty((samples, 0), dtype=np.int64))
    return out


def finite_or_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
