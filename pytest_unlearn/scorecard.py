"""Check results and the JSON scorecard (contract ``pytest-unlearn/scorecard/1``).

Results flow one way: a backend computes metric inputs, each check becomes a
:class:`CheckResult`, and the controller writes the scorecard once at the end of the session.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pytest_unlearn.files import write_bytes_atomic

SCHEMA = "pytest-unlearn/scorecard/1"
REPORTED_PACKAGES = (
    "pytest-unlearn",
    "pytest",
    "numpy",
    "torch",
    "transformers",
    "tokenizers",
    "diffusers",
    "open_clip_torch",
    "rouge_score",
    "scikit-learn",
    "scipy",
)


@dataclass
class CheckResult:
    """The outcome of one check; ``error`` is set when the value could not be computed."""

    id: str
    metric: str
    value: float | None
    threshold: float
    op: str
    passed: bool
    n: int | None = None
    ci95: tuple[float, float] | None = None
    higher_is_better: bool | None = None
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci95"] = list(self.ci95) if self.ci95 else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        data = dict(data)
        if data.get("ci95") is not None:
            data["ci95"] = tuple(data["ci95"])
        return cls(**data)

    def verdict(self) -> str:
        if self.error is not None:
            return "ERROR"
        return "PASS" if self.passed else "FAIL"

    def sentence(self) -> str:
        """``task2-knowledge-forget = 0.420, needs >= 0.900 (n=40, 95% CI 0.30-0.55)``."""
        if self.error is not None:
            return f"{self.id}: {self.error}"
        if "regression" in self.details:
            return str(self.details["regression"])
        extra = []
        if self.n is not None:
            extra.append(f"n={self.n}")
        if self.ci95 is not None:
            extra.append(f"95% CI {self.ci95[0]:.3f}-{self.ci95[1]:.3f}")
        tail = f" ({', '.join(extra)})" if extra else ""
        needs = threshold_text(self.op, self.threshold, self.unit)
        return f"{self.id} = {format_number(self.value)}, needs {needs}{tail}"


def threshold_text(op: str, threshold: float, unit: str = "") -> str:
    """``>= 0.9000``; ``|x| <= 20.0000`` for a metric whose unit says it is an absolute value
    (muse's PrivLeak, ``|% of AUC_retrain|``): the check is on the magnitude, either way."""
    bound = f"{op} {format_number(threshold)}"
    return f"|x| {bound}" if unit.startswith("|") else bound


def format_number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    # Fixed point reads best for scores and accuracies; a weight-change ratio (1e-6) would print
    # as 0.0000, so small values keep 4 significant digits, large ones (an FID) 6.
    if value == 0 or 1e-3 <= abs(value) < 1000:
        return f"{value:.4f}"
    return f"{value:.4g}" if abs(value) < 1e-3 else f"{value:.6g}"


def package_versions() -> dict[str, str]:
    found = {}
    for name in REPORTED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def environment(device: str | None) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "device": device,
    }


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write then rename, so a reader (or a crash) never sees half a scorecard."""
    text = json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def build_scorecard(
    *,
    suite: dict[str, Any],
    model: dict[str, Any],
    checks: list[CheckResult],
    aggregates: dict[str, Any],
    artifacts: dict[str, str],
    settings: dict[str, Any],
    device: str | None,
    timings: dict[str, float],
    complete: bool,
    missing: list[str],
    warnings: list[str] | None = None,
    running: bool = False,
    baseline: dict[str, Any] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    # "running": written when the first check starts, so a run killed outright (SIGKILL, the
    # OOM killer) leaves a card that says so, never the previous run's complete one.
    # "partial": a check of the suite produced no value (deselected, skipped, not reached) or
    # the run was a subset on purpose (--unlearn-partial): never passed.
    status = "running" if running else status or ("complete" if complete else "incomplete")
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "missing_checks": missing,
        "passed": bool(checks) and status == "complete" and all(c.passed for c in checks),
        "suite": suite,
        "model": model,
        "checks": [_clean(c.to_json()) for c in checks],
        "aggregates": _clean(aggregates),
        "artifacts": artifacts,
        "settings": _clean(settings),
        "environment": environment(device),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "warnings": list(warnings or []),
        **({"baseline": baseline} if baseline else {}),
    }


def _clean(value: Any) -> Any:
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def render_table(results: list[CheckResult]) -> list[str]:
    """The terminal summary: one row per check with its value, threshold and verdict."""
    with_baseline = any("baseline" in r.details for r in results)
    headers = ("check", "value", "threshold", "95% CI", "n", "verdict") + (("vs baseline",) if with_baseline else ())
    rows = []
    for r in results:
        ci = f"{r.ci95[0]:.3f}-{r.ci95[1]:.3f}" if r.ci95 else ""
        row = (
            r.id,
            format_number(r.value),
            threshold_text(r.op, r.threshold, r.unit),
            ci,
            "" if r.n is None else str(r.n),
            r.verdict(),
        )
        if with_baseline:
            compared = r.details.get("baseline", {})
            delta = f"{compared['delta']:+.4g}" if "delta" in compared else compared.get("note", "")
            row += (delta + (" REGRESSION" if compared.get("regressed") else ""),)
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return out
