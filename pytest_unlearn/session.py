"""The state of one certification run, independent of pytest.

Holds the manifest, the backend and the results received so far, and assembles the scorecard.
The plugin keeps one of these in ``config.stash``.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_unlearn import memory
from pytest_unlearn.baseline import Baseline, load_baseline
from pytest_unlearn.baseline import apply as apply_baseline
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings, create_backend
from pytest_unlearn.manifest import SuiteManifest, resolve_suite
from pytest_unlearn.scorecard import CheckResult, build_scorecard, write_json_atomic


def ensure_writable_file(path: Path, flag: str) -> None:
    """Fail before the run, not after it, when the scorecard could not be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".unlearn-probe-"):
            pass
    except OSError as exc:
        raise UnlearnError(f"{flag} {path}: cannot write there ({exc.strerror or exc}); pick a writable path") from None


def ensure_writable_dir(path: Path, flag: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".unlearn-probe-"):
            pass
    except OSError as exc:
        raise UnlearnError(
            f"{flag} {path}: cannot write there ({exc.strerror or exc}); pick a writable folder"
        ) from None


@dataclass
class RunState:
    manifest: SuiteManifest
    backend: Backend
    settings: RunSettings
    scorecard_path: Path
    results: dict[str, CheckResult] = field(default_factory=dict)
    selected: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    # Whether any check began to run: a run that executes none (--collect-only, -k matching
    # nothing) must not replace the scorecard of an earlier run.
    checks_started: bool = False
    # What the scorecard path held before this run ("complete, created …"), said when replaced.
    replaced: str | None = None
    # --baseline: a previous scorecard every check is also compared with.
    baseline: Baseline | None = None
    baseline_tolerance: float | None = None
    # Check id -> the test that recorded it with unlearn_check (ids are unique in a scorecard).
    user_checks: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        suite: str,
        settings: RunSettings,
        scorecard_path: Path,
        baseline: Path | None = None,
        baseline_tolerance: float | None = None,
    ) -> RunState:
        manifest = resolve_suite(suite)
        ensure_writable_file(scorecard_path, "--scorecard")
        ensure_writable_dir(settings.artifacts, "--artifacts")
        loaded = load_baseline(baseline, manifest.name, manifest.version) if baseline else None
        if baseline_tolerance is not None and loaded is None:
            raise UnlearnError("--baseline-tolerance needs --baseline PATH (the scorecard to compare with)")
        backend = create_backend(manifest, settings)
        return cls(
            backend.manifest, backend, settings, scorecard_path, baseline=loaded, baseline_tolerance=baseline_tolerance
        )

    def evaluate(self, spec: Any) -> CheckResult:
        """One check's result, compared with the baseline when there is one."""
        result = self.backend.evaluate(spec)
        if self.baseline is not None:
            result = apply_baseline(result, self.baseline, self.baseline_tolerance)
        return result

    def record(self, result: CheckResult) -> None:
        earlier = self.results.get(result.id)
        if earlier is not None and earlier.details.get("test") != result.details.get("test"):
            # Two xdist workers' tests chose one id: keep both, say so (never a silent overwrite).
            self.backend.warnings.append(
                f"check id {result.id!r} recorded by {earlier.details.get('test')} and {result.details.get('test')}; "
                f"the second is kept as {result.id}@{result.details.get('test')}"
            )
            result.id = f"{result.id}@{result.details.get('test')}"
        self.results[result.id] = result

    def ordered_results(self) -> list[CheckResult]:
        """Results in manifest order (checks not in the manifest, if any, last)."""
        position = {spec.id: i for i, spec in enumerate(self.manifest.checks)}
        return sorted(self.results.values(), key=lambda r: position.get(r.id, len(position)))

    def placeholder(self) -> dict[str, Any]:
        """The card written when the first check starts: ``"status": "running"``, no results."""
        return build_scorecard(
            suite=self.suite_record(),
            model={"path": None if self.settings.model is None else str(self.settings.model)},
            checks=[],
            aggregates={},
            artifacts={},
            settings={},
            device=None,
            timings={},
            complete=False,
            missing=list(self.selected),
            running=True,
        )

    def suite_record(self) -> dict[str, Any]:
        return {
            "name": self.manifest.name,
            "version": self.manifest.version,
            "manifest": str(self.manifest.path),
            "manifest_sha256": self.manifest.sha256,
        }

    def scorecard(self, *, interrupted: bool) -> dict[str, Any]:
        missing = [check_id for check_id in self.selected if check_id not in self.results]
        timings = {"total": time.perf_counter() - self.started, **self.backend.timings}
        # The run's peak: the highest phase peak (a worker's, under xdist) or what this process
        # reached since the last phase, whichever is higher.
        peaks = [v for k, v in timings.items() if k.endswith(".peak_rss_mib")]
        timings["total.peak_rss_mib"] = max([memory.process_peak_mib(), *peaks])
        settings = self.backend.settings_record()
        settings["seed"] = self.manifest.settings.get("seed", 0)
        settings["bootstrap_samples"] = self.manifest.settings.get("bootstrap_samples", 1000)
        settings["threshold_overrides"] = dict(self.settings.thresholds)
        card = build_scorecard(
            suite=self.suite_record(),
            model=self.backend.model_record(),
            checks=self.ordered_results(),
            aggregates=self.backend.aggregates(),
            artifacts=self.backend.run_artifacts(),
            settings=settings,
            device=self.backend.run_device(),
            timings=timings,
            complete=not interrupted and not missing,
            missing=missing,
            warnings=list(self.backend.warnings),
            baseline=self.baseline.record() if self.baseline else None,
        )
        # The page beside the scorecard: the check table, then the suite's own sections
        # (semeval's worst examples and histograms, genmu's image grids).
        from pytest_unlearn.report import write_report

        report = self.scorecard_path.with_suffix(".html")
        try:
            sections = self.backend.report_sections(card, report)
        except Exception as exc:  # a page must never cost the scorecard its results
            sections = []
            card["warnings"].append(f"the HTML report lacks the suite's sections ({type(exc).__name__}: {exc})")
        card["artifacts"].update(write_report(report, card, sections))
        return card

    def start_checks(self) -> None:
        """The first check starts: note what the scorecard path holds, then mark it running."""
        if self.checks_started:
            return
        self.checks_started = True
        self.replaced = describe_existing(self.scorecard_path)
        try:
            write_json_atomic(self.scorecard_path, self.placeholder())
        except OSError:
            pass  # the final write reports an unwritable path (and keeps the results elsewhere)

    def write(self, card: dict[str, Any]) -> str | None:
        """Write the scorecard; when its path became unwritable during the run, write it to a
        temporary file instead (results are never lost) and return the one-line error."""
        try:
            write_json_atomic(self.scorecard_path, card)
        except OSError as exc:
            wanted = self.scorecard_path
            handle, name = tempfile.mkstemp(prefix="unlearn-scorecard-", suffix=".json")
            os.close(handle)
            self.scorecard_path = Path(name)
            write_json_atomic(self.scorecard_path, card)
            return (
                f"--scorecard {wanted}: cannot write it ({exc.strerror or exc}); wrote it to {name} instead: "
                "pick a writable --scorecard path"
            )
        return None


def describe_existing(path: Path) -> str | None:
    """``"complete scorecard of 2026-12-01T10:00:00+00:00"`` for a file already at ``path``."""
    import json

    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "file that is not a scorecard"
    if not isinstance(card, dict):
        return "file that is not a scorecard"
    return f"{card.get('status', 'unknown')} scorecard of {card.get('created', 'unknown date')}"


def default_artifacts_dir(scorecard: Path) -> Path:
    return scorecard.with_name(scorecard.stem + "-artifacts")
