"""The state of one certification run, independent of pytest.

Holds the manifest, the backend and the results received so far, and assembles the scorecard.
The plugin keeps one of these in ``config.stash``.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_unlearn import memory
from pytest_unlearn.baseline import Baseline, load_baseline
from pytest_unlearn.baseline import apply as apply_baseline
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.evaluation import Backend, RunSettings, create_backend
from pytest_unlearn.manifest import SuiteManifest, apply_threshold_overrides, resolve_suite
from pytest_unlearn.scorecard import CheckResult, build_scorecard, write_json_atomic
from pytest_unlearn.stress import StressRun, stress_problem, stress_section, stressed_checks

#: The model roles whose weights are fingerprinted when a check first runs and verified when the
#: scorecard is written (flag, RunSettings attribute).
WEIGHT_ROLES = (("--model", "model"), ("--original-model", "original_model"), ("--reference", "reference"))
#: Path options whose source (flag, environment variable, ini) the scorecard records.
PATH_OPTIONS = (
    "unlearn_model", "unlearn_data", "unlearn_scorecard", "unlearn_artifacts", "unlearn_predictions",
    "unlearn_mmlu", "unlearn_mia_data", "unlearn_original_model", "unlearn_reference", "unlearn_model_config",
    "unlearn_images", "unlearn_cache_dir", "unlearn_baseline",
)  # fmt: skip


def ensure_writable_file(path: Path, flag: str) -> None:
    """Fail before the run, not after it, when the scorecard could not be written."""
    from pytest_unlearn.files import input_file_problem

    problem = input_file_problem(path)
    if problem is not None and "cap" not in problem:  # an output may be large: only its kind matters
        raise UnlearnError(f"{flag} {path}: {problem.replace('pass the file inside it', 'pass a file path')}")
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
    # --unlearn-partial: a subset of the checks on purpose (the card never says passed).
    partial_ok: bool = False
    # Option dest -> {"flag", "value", "from"} for the path options given (CLI, environment, ini).
    option_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    # pytest marks (skip, skipif, xfail) something outside the suite put on its checks: one
    # line each, naming who applied them. Any makes the gate fail.
    # Keyed by what was done and by whom ("{checks} ... by conftest.py:5"), with the checks it was
    # done to: one line per (mark, applier), however many checks.
    refused: dict[str, list[str]] = field(default_factory=dict)
    # Flag -> {"path", "fingerprint", "files"} of each model's weights, taken before the first
    # check of this process loads them (xdist: each worker's, merged by the controller).
    weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What went wrong with the weights between their load and the card (one line each).
    weight_errors: list[str] = field(default_factory=list)
    # The lock that makes this run the only writer of its scorecard (the controller's).
    lock: Any = None
    # --stress: the copies and backends behind the CHECK@STRESS checks (None without it).
    stress: StressRun | None = None

    @classmethod
    def start(
        cls,
        suite: str,
        settings: RunSettings,
        scorecard_path: Path,
        baseline: Path | None = None,
        baseline_tolerance: float | None = None,
        *,
        partial_ok: bool = False,
        option_sources: dict[str, dict[str, Any]] | None = None,
        own_outputs: bool = False,
    ) -> RunState:
        """``own_outputs``: this process writes the scorecard (not an xdist worker), so it takes
        the scorecard's lock first; a second run aimed at the same path is refused."""
        manifest = resolve_suite(suite)
        ensure_writable_file(scorecard_path, "--scorecard")
        ensure_writable_dir(settings.artifacts, "--artifacts")
        check_input_paths(settings)
        if settings.model is not None and settings.predictions is not None and settings.strict:
            raise UnlearnError(
                f"--model {settings.model} and --predictions {settings.predictions} together: some checks would be "
                "scored from the file, not the weights (--strict refuses a mix); pass one of them"
            )
        loaded = load_baseline(baseline, manifest.name, manifest.version) if baseline else None
        if baseline_tolerance is not None and loaded is None:
            raise UnlearnError("--baseline-tolerance needs --baseline PATH (the scorecard to compare with)")
        # Thresholds of the stressed checks (CHECK@STRESS, recovery@STRESS) are laid on once those exist.
        stressed_thresholds = {k: v for k, v in settings.thresholds.items() if "@" in k}
        plain = replace(settings, thresholds={k: v for k, v in settings.thresholds.items() if "@" not in k})
        if settings.stresses:
            problem = stress_problem(settings.model, settings.stresses, settings.models)
            if problem is not None:
                raise UnlearnError(problem)
        elif stressed_thresholds:
            raise UnlearnError(
                f"--threshold {next(iter(stressed_thresholds))}=…: that check exists only with --stress "
                "(e.g. --stress quantize:int4 makes CHECK@int4 and recovery@int4)"
            )
        try:
            backend = create_backend(manifest, plain)
        except UnlearnError as exc:
            raise explain_path_error(exc, settings) from None
        checked = backend.manifest
        stress_run = None
        if settings.stresses:
            checks = stressed_checks(
                checked.checks,
                settings.stresses,
                manifest.recovery_bound,
                with_original=settings.original_model is not None,
            )
            checked = apply_threshold_overrides(replace(checked, checks=checks), stressed_thresholds)
            stress_run = StressRun(settings.stresses, manifest, plain, backend)
            stress_run.check()
            if settings.original_model is None:
                # Said, not refused: the sibling checks still gate; only the gap is unmeasured.
                names = ", ".join(f"recovery@{stress.name}" for stress in settings.stresses)
                backend.warnings.append(
                    f"--stress without --original-model: {names} not scored (recovery measures the gap to the "
                    "model before unlearning); pass --original-model PATH to bound it"
                )
        lock = lock_scorecard(scorecard_path) if own_outputs else None
        return cls(
            checked,
            backend,
            settings,
            scorecard_path,
            baseline=loaded,
            baseline_tolerance=baseline_tolerance,
            partial_ok=partial_ok,
            option_sources=dict(option_sources or {}),
            lock=lock,
            stress=stress_run,
        )

    def release(self) -> None:
        """Let the next run write this scorecard."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @property
    def required(self) -> list[str]:
        """Every check of the suite (after per-concept expansion and --threshold): what the gate
        is over, whatever pytest collected, selected or ran."""
        return [spec.id for spec in self.manifest.checks]

    def refuse(self, template: str, nodeid: str) -> None:
        """Note a mark or skip someone outside the suite put on check ``nodeid``."""
        checks = self.refused.setdefault(template, [])
        if nodeid not in checks:
            checks.append(nodeid)

    def refused_lines(self) -> list[str]:
        lines = []
        for template, nodeids in self.refused.items():
            if len(nodeids) == 1:
                checks = nodeids[0]
            else:
                more = ", ..." if len(nodeids) > 3 else ""
                checks = f"{len(nodeids)} suite checks ({', '.join(nodeids[:3])}{more})"
            lines.append(template.replace("{checks}", checks))
        return lines

    def missing(self) -> list[str]:
        """Required checks that produced no result (deselected, skipped, errored, not reached)."""
        return [check_id for check_id in self.required if check_id not in self.results]

    def gate_line(self, missing: list[str]) -> str:
        """The one terminal line of a partial run: which checks and how to run them."""
        shown = ", ".join(missing[:8]) + (f", ... ({len(missing) - 8} more)" if len(missing) > 8 else "")
        total = len(self.required)
        if self.partial_ok:
            return (
                f"unlearn: partial run (--unlearn-partial): {len(missing)} of {total} checks of suite "
                f"{self.manifest.name} not run ({shown}); the scorecard does not pass the suite"
            )
        return (
            f"unlearn: gate not passed: {len(missing)} of {total} checks of suite {self.manifest.name} produced no "
            f"value ({shown}); run the whole suite (no -k/-m/--deselect/--lf/-x, no skipping conftest), or pass "
            "--unlearn-partial to accept a subset that never passes"
        )

    # -- the weights behind the values -----------------------------------------------------
    def snapshot_weights(self) -> None:
        """Fingerprint each model before this process's first check loads it (once)."""
        if self.weights:
            return
        from pytest_unlearn.fingerprint import file_digests

        for flag, attr in WEIGHT_ROLES:
            path = getattr(self.settings, attr, None)
            if path is None or not Path(path).exists():
                continue
            try:
                files = file_digests(path)
            except OSError:
                continue  # the loader says what is wrong with the folder
            if files:
                self.weights[flag] = {"path": str(path), "fingerprint": _combine(files), "files": files}

    def merge_weights(self, weights: dict[str, dict[str, Any]]) -> None:
        """A worker's snapshot: a fingerprint that differs from another process's is a change."""
        for flag, record in weights.items():
            mine = self.weights.get(flag)
            if mine is None:
                self.weights[flag] = record
            elif mine["fingerprint"] != record["fingerprint"]:
                changed = sorted(
                    k for k in {*mine["files"], *record["files"]} if mine["files"].get(k) != record["files"].get(k)
                )
                self.weight_errors.append(_changed_line(flag, record["path"], changed, "between two workers' loads"))

    def verify_weights(self) -> list[str]:
        """Each fingerprinted model read again: a file that changed since it was loaded is an
        error naming it (the values came from weights the card could not name)."""
        from pytest_unlearn.fingerprint import file_digests

        errors = list(self.weight_errors)
        for flag, record in self.weights.items():
            try:
                now = file_digests(record["path"])
            except OSError:
                now = {}
            changed = sorted(k for k in {*record["files"], *now} if record["files"].get(k) != now.get(k))
            if changed:
                errors.append(_changed_line(flag, record["path"], changed, "since the run loaded it"))
        return errors

    def evaluate(self, spec: Any) -> CheckResult:
        """One check's result, compared with the baseline when there is one."""
        self.snapshot_weights()
        result = self.stress.evaluate(spec) if spec.stress and self.stress else self.backend.evaluate(spec)
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
        missing = self.missing()
        weight_errors = self.verify_weights()
        status = "incomplete" if interrupted else "partial" if missing or self.partial_ok else "complete"
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
            status=status,
        )
        card["gate"] = {
            "required": len(self.required),
            "produced": len(self.required) - len(missing),
            "partial_requested": self.partial_ok,
            "refused_marks": self.refused_lines(),
            "weights_changed": weight_errors,
        }
        if self.refused or weight_errors:
            card["passed"] = False
        if self.settings.stresses:
            card["stress"] = stress_section(self.ordered_results(), self.settings.stresses)
        self._add_provenance(card)
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

    def _add_provenance(self, card: dict[str, Any]) -> None:
        """Per check, what produced its value; the headline names only what produced some."""
        specs = {spec.id: spec for spec in self.manifest.checks}
        predictions = self.settings.predictions
        predictions_record: dict[str, Any] | None = None
        if predictions is not None:
            predictions_record = {"kind": "predictions", "path": str(predictions), "sha256": _sha256_of(predictions)}
            source = self.option_sources.get("unlearn_predictions", {}).get("from")
            if source:
                predictions_record["from"] = source
        model = self.weights.get("--model")
        model_record: dict[str, Any] | None = None
        if self.settings.model is not None:
            model_record = {
                "kind": "model",
                "path": str(self.settings.model),
                # Taken before the weights were loaded; verified just now (gate.weights_changed).
                "fingerprint": model["fingerprint"] if model else None,
            }
        by_model: list[str] = []
        by_file: list[str] = []
        # Check id -> what produced its value, one entry per input it needs (beside the check
        # records, whose shape the scorecard contract fixes).
        per_check: dict[str, list[dict[str, Any]]] = {}
        reuse: dict[str, list[dict[str, Any]]] = {}
        for check in card["checks"]:
            spec = specs.get(check["id"])
            if spec is None:
                per_check[check["id"]] = [{"kind": "unlearn_check", "test": check.get("details", {}).get("test")}]
                continue
            if spec.stress:
                # A transformed copy of --model (or, for recovery, the copy, --model and
                # --original-model together): the card's "stress" section names it.
                copy = check.get("details", {}).get("stress") or {}
                per_check[check["id"]] = [
                    {
                        "kind": "stressed model",
                        "stress": spec.stress,
                        "path": copy.get("path"),
                        "source_fingerprint": copy.get("source_fingerprint"),
                    }
                ]
                continue
            sources = []
            for name in self.backend.requires(spec):
                origin = self.backend.input_origin(name)
                entry: dict[str, Any] = {"input": name}
                if origin == "predictions" and predictions_record is not None:
                    entry.update(predictions_record)
                    by_file.append(check["id"])
                elif origin == "model" and model_record is not None:
                    entry.update(model_record)
                    by_model.append(check["id"])
                else:
                    entry["kind"] = "data"
                cached = self.backend.cache_events.get(name)
                if cached:
                    # Key and content hash are the same in every run of the same inputs; whether
                    # this run found the entry or wrote it goes to "cache_reuse" (volatile, like
                    # timings), so two runs still give the same card.
                    entry["cache"] = [{k: v for k, v in event.items() if k != "reused"} for event in cached]
                    reuse[check["id"]] = [{"key": e["key"], "reused": e["reused"]} for e in cached]
                sources.append(entry)
            per_check[check["id"]] = sources
        record = card.get("model")
        if isinstance(record, dict) and model_record is not None:
            if model is not None and record.get("path") == str(self.settings.model):
                record["fingerprint"] = model["fingerprint"]  # the weights loaded, not those at the end
            if not by_model and record.get("path") is not None:
                # No value of this card came from these weights: the headline must not name them.
                record["given"] = record["path"]
                record["path"] = None
                record["fingerprint"] = None
            record["checks"] = sorted(set(by_model), key=list(specs).index)
        if by_model and by_file:
            card["warnings"].append(
                f"mixed sources: {len(set(by_file))} check(s) scored from --predictions {predictions} "
                f"(sha256 {predictions_record['sha256'][:12]}…), not from the --model {self.settings.model} weights "
                "(provenance.checks says which); --strict refuses the mix"
            )
        card["provenance"] = {
            "checks": per_check,
            # The file and the checks it produced (the headline "model" keeps the backend's shape).
            "predictions": None
            if predictions_record is None
            else dict(predictions_record, checks=sorted(set(by_file), key=list(specs).index)),
            "options": {k: v for k, v in self.option_sources.items() if k != "unlearn_cache_dir"},
            "weights": {flag: dict(record) for flag, record in self.weights.items()},
        }
        # Where the cache was (and where that came from) is of this run, like the reuse itself.
        card["cache_reuse"] = {"cache_dir": self.option_sources.get("unlearn_cache_dir"), "checks": reuse}

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


def _combine(files: dict[str, str]) -> str:
    """The same ``sha256:`` value :func:`pytest_unlearn.fingerprint.fingerprint` gives."""
    import hashlib

    outer = hashlib.sha256()
    for name in sorted(files):
        outer.update(name.encode("utf-8") + b"\0" + bytes.fromhex(files[name]))
    return "sha256:" + outer.hexdigest()


def _changed_line(flag: str, path: str, changed: list[str], when: str) -> str:
    names = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
    return (
        f"{flag} {path}: weight file(s) changed {when} ({names}); the values cannot be tied to one set of "
        "weights: rerun on a model folder nothing writes to during the run"
    )


def _sha256_of(path: Path) -> str | None:
    import hashlib

    digest = hashlib.sha256()
    try:
        if Path(path).is_dir():
            for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
                digest.update(file.relative_to(path).as_posix().encode() + b"\0")
                with file.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
        else:
            with Path(path).open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


#: Path options a run reads, with their flags: a symlink loop in any is its own error.
_READ_PATHS = (
    ("--predictions", "predictions"), ("--data", "data"), ("--mmlu", "mmlu"), ("--mia-data", "mia_data"),
    ("--model", "model"), ("--original-model", "original_model"), ("--reference", "reference"),
    ("--model-config", "model_config"), ("--images", "images"),
)  # fmt: skip


def check_input_paths(settings: RunSettings) -> None:
    """Before any loader: a symlink loop, or a --predictions file over the input cap, is one line."""
    from pytest_unlearn.files import input_file_problem

    for flag, attr in _READ_PATHS:
        path = getattr(settings, attr, None)
        if path is None:
            continue
        problem = input_file_problem(Path(path))
        if problem is None or problem.startswith("is a folder"):
            continue  # folders are what most of these take; the loader says when one is wrong
        raise UnlearnError(f"{flag} {path}: {problem}")


def explain_path_error(exc: UnlearnError, settings: RunSettings) -> UnlearnError:
    """A loader's "no such file" for a path that exists as a folder says so instead."""
    from pytest_unlearn.files import input_file_problem

    text = str(exc)
    for flag, attr in _READ_PATHS:
        path = getattr(settings, attr, None)
        if path is None or f"{flag} {path}: no such file" not in text:
            continue
        problem = input_file_problem(Path(path))
        if problem is not None:
            return UnlearnError(f"{flag} {path}: {problem}")
    return exc


def lock_scorecard(path: Path) -> Any:
    """This run becomes the only writer of ``path``; a run already writing it is one line."""
    import socket

    from pytest_unlearn.files import LockBusy, OwnedLock

    lock_path = path.with_name(f".{path.name}.lock")
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    try:
        return OwnedLock(lock_path, holder)
    except LockBusy as busy:
        raise UnlearnError(
            f"--scorecard {path}: another run ({busy.holder}) is writing it; wait for it to finish or pass "
            "another --scorecard"
        ) from None
    except OSError as exc:
        raise UnlearnError(
            f"--scorecard {path}: cannot lock it ({exc.strerror or exc}); pick a writable path"
        ) from None
