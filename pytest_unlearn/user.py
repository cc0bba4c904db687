"""Checks that users write in their own test files (the ``unlearn_check`` fixture), free of pytest.

A user check is a first-class check: it lands in the scorecard (``source: "user"`` and the test's
node id in ``details``), the terminal table and the JUnit properties, with a bootstrap interval
when per-sample values are given, and it fails its test when it misses its threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.manifest import OPS, CheckSpec
from pytest_unlearn.scorecard import CheckResult
from pytest_unlearn.stats import bootstrap_ci, resample_indices


def user_check(
    check_id: str,
    value: float,
    op: str,
    threshold: float,
    *,
    n: int | None,
    samples: Sequence[float] | None,
    nodeid: str,
    suite_checks: Sequence[str],
    seed: int,
    bootstrap_samples: int,
) -> CheckResult:
    """The result of one user check; a malformed call is an :class:`UnlearnError` naming it."""
    where = f"unlearn_check({check_id!r}) in {nodeid}"
    if not isinstance(check_id, str) or not check_id.strip():
        raise UnlearnError(f"unlearn_check in {nodeid}: the id must be a non-empty string, got {check_id!r}")
    if check_id in suite_checks:
        raise UnlearnError(f"{where}: the suite has a check of that id; pick another id")
    if op not in OPS:
        raise UnlearnError(f"{where}: op must be one of {', '.join(OPS)}, got {op!r}")
    try:
        value, threshold = float(value), float(threshold)
    except (TypeError, ValueError):
        raise UnlearnError(f"{where}: value and threshold must be numbers, got {value!r} and {threshold!r}") from None
    if not math.isfinite(threshold):
        raise UnlearnError(f"{where}: the threshold must be finite, got {threshold!r}")
    ci = None
    if samples is not None:
        data = np.asarray(list(samples), dtype=float)
        if data.size == 0:
            raise UnlearnError(f"{where}: samples is empty; pass the per-sample values or leave it out")
        if not math.isclose(float(data.mean()), value, rel_tol=1e-9, abs_tol=1e-12):
            raise UnlearnError(
                f"{where}: value {value!r} is not the mean of its samples ({float(data.mean())!r}); the interval "
                "would not be about it"
            )
        n = data.size if n is None else n
        ci = bootstrap_ci(
            lambda rng: float(data[rng.integers(0, data.size, data.size)].mean()),
            samples=bootstrap_samples,
            seed=seed,
            batched=lambda rng, count: data[resample_indices([data.size], rng, count)[0]].mean(axis=1),
        )
    spec = CheckSpec(id=check_id, metric="user", op=op, threshold=threshold)
    return CheckResult(
        id=check_id,
        metric="user",
        value=value,
        threshold=threshold,
        op=op,
        passed=spec.passes(value),
        n=n,
        ci95=ci,
        higher_is_better=op == ">=",
        details={"source": "user", "test": nodeid},
    )
