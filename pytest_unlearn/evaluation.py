"""The evaluation protocol every suite backend follows, free of pytest.

A backend is built from a manifest and the run settings. Building it validates the data (so a
bad file is a usage error before any model loads); checks then ask for the expensive inputs
they need by name (``requires`` of their metric), each computed once per run and shared.
"""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field, is_dataclass, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from pytest_unlearn import (
    builtins,  # noqa: F401  (registers built-in metrics, suites, backends)
    memory,
)
from pytest_unlearn.cache import open_cache
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.files import write_bytes_atomic
from pytest_unlearn.loading import same_model_roles
from pytest_unlearn.manifest import CheckSpec, SuiteManifest, apply_threshold_overrides, expand_per_concept
from pytest_unlearn.registry import BACKENDS, METRICS, Metric
from pytest_unlearn.scorecard import CheckResult
from pytest_unlearn.settings import COMMON
from pytest_unlearn.stats import bootstrap_ci


@dataclass(frozen=True)
class RunSettings:
    """What the user asked for on the command line / ini / environment, already validated: the
    run-level fields and the generic roles. A suite's own inputs are its settings (``overrides``,
    checked against the suite's declarations when the backend is made)."""

    model: Path | None = None
    # Every --model value as given (a suite that takes several, genmu's CONCEPT=PATH, reads these).
    models: tuple[str, ...] = ()
    data: Path | None = None
    # Named data entries given apart from the data folder (--data mmlu=DIR, --data mia=DIR).
    data_paths: dict[str, Path] = field(default_factory=dict)
    artifacts: Path = Path("unlearn-scorecard-artifacts")
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 16
    predictions: Path | None = None
    allow_pickle: bool = False
    thresholds: dict[str, float] = field(default_factory=dict)
    # The model before unlearning (weight change, CLIP-score drop, MMLU ratio, accuracy ratio).
    original_model: Path | None = None
    # The model trained without the forget set (TOFU's retain model), or its logs.
    reference: Path | None = None
    # --setting KEY=VALUE (and the deprecated flags): override the manifest's [settings].
    overrides: dict[str, Any] = field(default_factory=dict)
    # Where each override came from ("--setting", "PYTEST_UNLEARN_SETTING", "--judge", ...).
    setting_sources: dict[str, str] = field(default_factory=dict)
    # Overrides from a deprecated flag that was a run-level field (--clip-model, ...): a suite
    # without that setting ignores them, as it ignored the field.
    ignorable_settings: frozenset[str] = frozenset()
    # The content-addressed artifact cache (None: --no-cache).
    cache_dir: Path | None = None
    # --strict: every warning of the run is an error.
    strict: bool = False
    # --stress: the transformed copies whose forget checks are scored too (pytest_unlearn.stress).
    stresses: tuple[Any, ...] = ()
    # The suite inputs that were fields before they became settings or data entries (one
    # release of grace for code that builds RunSettings itself).
    max_new_tokens: InitVar[int | None] = None
    mmlu: InitVar[Path | None] = None
    mia_data: InitVar[Path | None] = None
    model_config: InitVar[Path | None] = None
    clip_model: InitVar[str | None] = None
    concepts: InitVar[tuple[str, ...]] = ()
    images: InitVar[Path | None] = None

    def __post_init__(
        self,
        max_new_tokens: int | None,
        mmlu: Path | None,
        mia_data: Path | None,
        model_config: Path | None,
        clip_model: str | None,
        concepts: tuple[str, ...],
        images: Path | None,
    ) -> None:
        given = {"max_new_tokens": max_new_tokens, "model_config": model_config, "clip_model": clip_model}
        given |= {"images": images, "concepts": list(concepts) or None}
        given = {key: value for key, value in given.items() if value is not None}
        if given:
            # The field given by name wins (RunSettings(**{**old.__dict__, "max_new_tokens": 4})).
            object.__setattr__(self, "overrides", {**self.overrides, **given})
        data = {key: value for key, value in {"mmlu": mmlu, "mia": mia_data}.items() if value is not None}
        if data:
            object.__setattr__(self, "data_paths", {**self.data_paths, **data})


def check_metric_params(manifest: SuiteManifest) -> None:
    """Every check names a registered metric and passes it parameters it accepts."""
    for spec in manifest.checks:
        try:
            metric = METRICS.get(spec.metric)
        except UnlearnError as exc:
            raise UnlearnError(f"suite manifest {manifest.path}: check {spec.id!r}: {exc}") from None
        try:
            inspect.signature(metric.fn).bind(None, **spec.params)
        except TypeError as exc:
            raise UnlearnError(
                f"suite manifest {manifest.path}: check {spec.id!r}: bad params for metric {spec.metric!r} ({exc})"
            ) from None


class Backend(ABC):
    """Base class of suite backends: memoized inputs, failures remembered, checks evaluated."""

    #: The suite's declared settings (``pytest_unlearn.settings.Setting``): what ``--setting
    #: KEY=VALUE`` may set, with type, range, default and help. A bare name declares one untyped.
    SETTINGS: tuple[Any, ...] = COMMON
    #: Named data entries ``--data NAME=PATH`` may give besides the manifest's ``[data]`` names.
    DATA_ENTRIES: tuple[str, ...] = ()
    #: Whether ``--model`` may be given more than once (one model per concept, say).
    MULTIPLE_MODELS: bool = False

    def __init__(self, manifest: SuiteManifest, settings: RunSettings) -> None:
        self.manifest = manifest
        self.settings = settings
        self.timings: dict[str, float] = {}
        self._computed: set[str] = set()
        self._failures: dict[str, UnlearnError] = {}
        # Which cache entries each input was read from (reused) or written to: the scorecard's
        # per-check provenance. Read through a watcher, so the cache module stays as it is.
        self.cache_events: dict[str, list[dict[str, Any]]] = {}
        self._computing: str | None = None
        # A cache finding (an entry discarded, a folder not writable) is a warning even under
        # --strict: the result was computed again, no verdict rests on the cache.
        self.cache = _WatchedCache(open_cache(settings.cache_dir, warn=self._note), self._note_cache)
        # Run-level findings for the scorecard and the summary (an artifact not written, say).
        self.warnings: list[str] = []
        # Where long steps report how far they are (one line each); the plugin points it at the
        # terminal. Silent by default, so the core stays free of any output channel.
        self.progress: Callable[[str], None] = lambda message: None
        # What xdist workers computed, merged into the controller's backend (import_state).
        self._worker_device: str | None = None
        self._worker_artifacts: dict[str, str] = {}
        # This process's artifact files (name -> path), listed in the scorecard's "artifacts".
        self._artifact_files: dict[str, str] = {}

    def setting(self, name: str, default: Any = None) -> Any:
        """The suite's setting ``name`` as resolved (manifest, ``--setting``, ini, environment)."""
        return self.manifest.settings.get(name, default)

    #: The inputs ``--predictions`` provides when it is given (None: every input). A backend
    #: that scores some inputs from the file and the rest from the weights (semeval: the text
    #: checks from the file, MIA and MMLU from the model) names the file's inputs here.
    PREDICTED_INPUTS: tuple[str, ...] | None = None

    def input_origin(self, name: str) -> str:
        """What produced input ``name``: ``"predictions"`` (the --predictions file), ``"model"``
        (the --model weights) or ``"data"`` (neither: computed from the suite's data alone)."""
        if self.settings.predictions is not None and (
            self.PREDICTED_INPUTS is None or name in self.PREDICTED_INPUTS or self.settings.model is None
        ):
            return "predictions"
        return "model" if self.settings.model is not None else "data"

    def _note_cache(self, event: dict[str, Any]) -> None:
        self.cache_events.setdefault(self._computing or "user", []).append(event)

    def warn(self, message: str | None) -> None:
        """Record a run-level finding for the scorecard and the summary; under ``--strict`` it
        is an error instead (raised where it arises: a usage error while the data load)."""
        if not message:
            return
        if self.settings.strict:
            raise UnlearnError(f"{message} (--strict turns warnings into errors)")
        if message not in self.warnings:
            self.warnings.append(message)

    def _note(self, message: str) -> None:
        """Record a finding that is never an error (what it reports was already repaired)."""
        if message not in self.warnings:
            self.warnings.append(message)

    def write_artifact(self, name: str, relative: str, data: bytes, records: str) -> None:
        """Write ``relative`` under ``--artifacts`` atomically and list it as artifact ``name``.

        The scores are already computed (minutes of generation) when their per-sample records
        are written: a folder that cannot be written costs the records, with one warning naming
        what is missing, never the checks."""
        path = self.settings.artifacts / relative
        try:
            write_bytes_atomic(path, data)
        except OSError as exc:
            self.warn(
                f"--artifacts {self.settings.artifacts}: cannot write {relative} ({exc.strerror or exc}); the scores "
                f"are kept, the {records} are not: pass a writable folder to keep them"
            )
            return
        self._artifact_files[name] = str(path)

    # -- what a backend provides -------------------------------------------------------------
    @abstractmethod
    def compute(self, name: str) -> None:
        """Compute the input ``name`` (e.g. "text") and keep it; raise UnlearnError on bad input."""

    @abstractmethod
    def metric_inputs(self) -> Any:
        """The object metric functions take; it offers ``resample(rng, requires)`` for the bootstrap."""

    @abstractmethod
    def aggregates(self) -> dict[str, Any]:
        """The scorecard's aggregates, from whatever inputs were computed."""

    def header_lines(self) -> list[str]:
        return []

    def requires(self, spec: CheckSpec) -> tuple[str, ...]:
        """The inputs check ``spec`` needs: its metric's ``requires``; a backend may name them
        more finely (one input per model), which also makes finer xdist groups."""
        return METRICS.get(spec.metric).requires

    def concepts(self) -> list[str] | None:
        """The target concepts that per-concept check templates expand over (None: no concepts)."""
        return None

    def expand_checks(self, checks: tuple[CheckSpec, ...]) -> tuple[CheckSpec, ...]:
        templates = [spec.id for spec in checks if spec.for_each]
        if not templates:
            return checks
        concepts = self.concepts()
        if concepts is None:
            raise UnlearnError(
                f"suite manifest {self.manifest.path}: check {templates[0]!r} is a per-concept template, "
                f"but the {self.manifest.backend!r} backend has no concepts"
            )
        return expand_per_concept(checks, concepts)

    def model_record(self) -> dict[str, Any]:
        return {"path": str(self.settings.model) if self.settings.model else None}

    # -- what the user's own tests get (the unlearn_* fixtures) ---------------------------------
    #: What the fixtures offer for this suite: any of "model", "original", "reference",
    #: "generate", "nll", "data", "images", "judge". A fixture the suite does not offer skips.
    USER_API: tuple[str, ...] = ("data",)

    def user_model(self, role: str = "model") -> Any:
        """The loaded model of ``role`` ("model", "original", "reference"), shared with the
        suite's checks."""
        raise UnlearnError(f"the {self.manifest.name} suite loads no {role} for your tests")

    def user_generate(self, prompts: list[str], **overrides: Any) -> list[str]:
        raise UnlearnError(f"the {self.manifest.name} suite has no text generation")

    def user_nll(self, texts: list[str]) -> list[float]:
        raise UnlearnError(f"the {self.manifest.name} suite has no text losses")

    def user_data(self) -> Any:
        """The suite's parsed data (rows, concepts, sets), as its loaders read them."""
        return None

    def user_images(self, prompts: list[str], seeds: list[int], model: str | None = None) -> list[Any]:
        raise UnlearnError(f"the {self.manifest.name} suite makes no images")

    def user_judge(self, images: list[Any], prompts: list[str]) -> list[Any]:
        raise UnlearnError(f"the {self.manifest.name} suite has no concept judge")

    def artifacts(self) -> dict[str, str]:
        return {}

    def device(self) -> str | None:
        return None

    def settings_record(self) -> dict[str, Any]:
        return {}

    def report_sections(self, card: dict[str, Any], report: Path) -> list[str]:
        """HTML sections of the suite for the report at ``report`` (after the check table);
        files they show are linked relative to it."""
        return []

    # -- xdist: inputs computed by workers, merged by the controller -------------------------
    # -- --stress (pytest_unlearn.stress) ------------------------------------------------------
    def stress_texts(self, part: str) -> list[tuple[str, str]]:
        """(id, text) of the suite's ``part`` ("forget" or "retain") set: what ``--stress
        relearn`` fine-tunes on. A suite without such texts says so; data=PATH still works."""
        raise UnlearnError(
            f"--stress relearn:data={'forget-half' if part == 'forget' else part}: the {self.manifest.name} suite "
            f"gives no {part} texts to relearn on; pass relearn:data=PATH (a .txt, one text per line, or .jsonl)"
        )

    def stress_images(self, part: str) -> list[tuple[str, str, Any]]:
        """(id, caption, image) of the suite's ``part`` ("retain") prompts drawn by
        ``--original-model``: what ``--stress relearn:data=retain`` fine-tunes a pipeline on. A
        suite without such prompts says so; data=PATH (an imagefolder) still works."""
        raise UnlearnError(
            f"--stress relearn:data={part}: the {self.manifest.name} suite gives no {part} images to relearn a "
            "pipeline on; pass relearn:data=PATH (an imagefolder: images and a metadata.jsonl of file_name and text)"
        )

    def hold_out(self, ids: set[str]) -> None:
        """Score only the forget items ``ids`` (relearn's held-out half, Deeb & Roger's protocol)."""
        # Suggest data=retain only to a suite that has retain texts.
        retain = "" if type(self).stress_texts is Backend.stress_texts else "relearn:data=retain or "
        raise UnlearnError(
            f"--stress relearn:data=forget-half: the {self.manifest.name} suite cannot score a held-out half of its "
            f"forget set; pass {retain}relearn:data=PATH"
        )

    def export_extra(self) -> dict[str, Any]:
        """Backend state besides ``self.inputs`` that the controller's scorecard needs."""
        return {}

    def import_extra(self, extra: dict[str, Any]) -> None:  # noqa: B027  (optional hook)
        """Take what :meth:`export_extra` of a worker sent."""

    def export_state(self) -> dict[str, Any]:
        """What this (worker) backend computed, as builtin types for execnet."""
        from pytest_unlearn.workers import encode

        inputs = getattr(self, "inputs", None)
        fields = {}
        if is_dataclass(inputs):
            fields = {f.name: getattr(inputs, f.name) for f in dataclass_fields(inputs)}
            fields = {k: v for k, v in fields.items() if v is not None}
        return encode(
            {
                "computed": sorted(self._computed),
                "inputs": fields,
                "artifacts": self.artifacts(),
                "timings": dict(self.timings),
                "device": self.device(),
                "warnings": list(self.warnings),
                "cache_events": {k: list(v) for k, v in self.cache_events.items()},
                "extra": self.export_extra(),
            }
        )

    def import_state(self, payload: dict[str, Any]) -> None:
        """Merge a worker's :meth:`export_state` into this (controller) backend, so aggregates,
        artifacts and reports are the same as when one process computed everything."""
        from pytest_unlearn.workers import decode

        state = decode(payload)
        inputs = getattr(self, "inputs", None)
        if is_dataclass(inputs) and state["inputs"]:
            changes = {}
            for name, value in state["inputs"].items():
                current = getattr(inputs, name, None)
                # Dict-valued inputs (one entry per detector, say) may come from several workers.
                changes[name] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
            self.inputs = replace(inputs, **changes)
        self._computed.update(state["computed"])
        self._worker_artifacts.update(state["artifacts"])
        for name, seconds in state["timings"].items():
            self.timings[name] = max(seconds, self.timings.get(name, 0.0))
        self._worker_device = self._worker_device or state["device"]
        self.warnings.extend(w for w in state["warnings"] if w not in self.warnings)
        for name, events in state.get("cache_events", {}).items():
            known = self.cache_events.setdefault(name, [])
            known.extend(e for e in events if e not in known)
        self.import_extra(state["extra"])

    def run_artifacts(self) -> dict[str, str]:
        return {**self._worker_artifacts, **self.artifacts()}

    def run_device(self) -> str | None:
        return self.device() or self._worker_device

    # -- shared machinery --------------------------------------------------------------------
    def ensure(self, requires: tuple[str, ...]) -> None:
        for name in requires:
            if name in self._computed:
                continue
            if name in self._failures:
                # One broken input (say an unloadable model) fails every check that needs it
                # with the same message, without retrying the expensive work.
                raise self._failures[name]
            started = time.perf_counter()
            with memory.measure() as peak:
                self._computing = name
                try:
                    self.compute(name)
                except UnlearnError as exc:
                    self._failures[name] = exc
                    raise
                finally:
                    self._computing = None
            self.timings[name] = time.perf_counter() - started
            # Peak memory per phase beside its seconds (README "Scorecard"): what a long-document
            # run needs is on the record, and a regression in it shows in the next card.
            self.timings[f"{name}.peak_rss_mib"] = peak.rss_mib
            if peak.cuda_mib is not None:
                self.timings[f"{name}.peak_cuda_mib"] = peak.cuda_mib
            self._computed.add(name)

    def evaluate(self, spec: CheckSpec) -> CheckResult:
        metric = METRICS.get(spec.metric)
        try:
            self.ensure(self.requires(spec))
            inputs = self.metric_inputs()
            measured = metric(inputs, **spec.params)
            ci = self._interval(metric, inputs, spec)
        except UnlearnError as exc:
            return CheckResult(
                id=spec.id,
                metric=spec.metric,
                value=None,
                threshold=spec.threshold,
                op=spec.op,
                passed=False,
                higher_is_better=metric.higher_is_better,
                unit=metric.unit,
                error=str(exc),
            )
        return CheckResult(
            id=spec.id,
            metric=spec.metric,
            value=measured.value,
            threshold=spec.threshold,
            op=spec.op,
            passed=spec.passes(measured.value),
            n=measured.n,
            ci95=ci,
            higher_is_better=metric.higher_is_better,
            unit=metric.unit,
            details=measured.details,
        )

    def _interval(self, metric: Metric, inputs: Any, spec: CheckSpec) -> tuple[float, float] | None:
        if not metric.sampled:
            return None
        samples = int(self.manifest.settings.get("bootstrap_samples", 1000))
        seed = int(self.manifest.settings.get("seed", 0))
        batched = None
        if metric.batched is not None and hasattr(inputs, "resample_batch"):

            def batched(rng: Any, count: int) -> Any:
                return metric.batched(inputs.resample_batch(rng, metric.requires, count), **spec.params)

        return bootstrap_ci(
            lambda rng: metric(inputs.resample(rng, metric.requires), **spec.params).value,
            samples=samples,
            seed=seed,
            batched=batched,
        )


def apply_setting_overrides(manifest: SuiteManifest, settings: RunSettings, backend_cls: type) -> SuiteManifest:
    """The manifest with its ``[settings]`` resolved: the overrides (``--setting KEY=VALUE``, its
    environment and ini twins, the deprecated flags) laid over the manifest's values, each
    checked against the suite's declared settings (``backend_cls.SETTINGS``).

    A key the suite does not know is a usage error: a typo such as ``--setting step=10`` must
    not leave the run on its defaults without a word.
    """
    from pytest_unlearn.settings import resolve_settings

    schema = tuple(getattr(backend_cls, "SETTINGS", ()))
    known = set(manifest.settings) | {s if isinstance(s, str) else s.name for s in schema}
    overrides = {
        key: value
        for key, value in settings.overrides.items()
        if key in known or key not in settings.ignorable_settings
    }
    resolved = resolve_settings(
        manifest.name, manifest.path, schema, manifest.settings, overrides, settings.setting_sources
    )
    return replace(manifest, settings=resolved)


def suite_settings(suite: str) -> tuple[SuiteManifest, tuple[Any, ...]]:
    """A suite's manifest and its backend's declared settings (imports the backend, not torch)."""
    from pytest_unlearn.manifest import resolve_suite

    manifest = resolve_suite(suite)
    try:
        backend_cls = BACKENDS.get(manifest.backend)
    except UnlearnError as exc:
        raise UnlearnError(f"suite manifest {manifest.path}: {exc}") from None
    return manifest, tuple(getattr(backend_cls, "SETTINGS", ()))


def settings_table(suite: str) -> list[str]:
    """A suite's declared settings, one line each: name, type and range, default, help."""
    from pytest_unlearn.settings import describe

    manifest, schema = suite_settings(suite)
    rows = describe(schema)
    width = max((len(name) for name, *_ in rows), default=0)
    kinds = max((len(kind) for _, kind, *_ in rows), default=0)
    lines = [
        f"settings of suite {manifest.name} (backend {manifest.backend}; --setting KEY=VALUE, manifest [settings]):"
    ]
    for name, kind, default, help_text in rows:
        given = manifest.settings.get(name)
        shown = default or "-"
        if isinstance(given, dict):
            shown += " (manifest: a table)"
        elif given is not None and repr(given) != default and str(given).lower() != default:
            shown += f" (manifest: {given!r})"
        lines.append(f"  {name:<{width}}  {kind:<{kinds}}  default {shown}  {help_text}".rstrip())
    return lines


def create_backend(manifest: SuiteManifest, settings: RunSettings) -> Backend:
    """Build the manifest's backend (validating the data), expand per-concept check templates,
    apply ``--threshold`` overrides and check every metric and its parameters."""
    try:
        backend_cls = BACKENDS.get(manifest.backend)
    except UnlearnError as exc:
        raise UnlearnError(f"suite manifest {manifest.path}: {exc}") from None
    manifest = apply_setting_overrides(manifest, settings, backend_cls)
    entries = sorted({*manifest.data, *getattr(backend_cls, "DATA_ENTRIES", ())})
    for name, path in settings.data_paths.items():
        if name not in entries:
            raise UnlearnError(
                f"--data {name}={path}: suite {manifest.name} has no data entry {name!r}; "
                f"known: {', '.join(entries) or 'none'} (or pass its data folder as --data DIR)"
            )
    # The backend sees the checked values (a path as a Path, one concept as a list).
    settings = replace(
        settings, overrides={key: manifest.settings[key] for key in settings.overrides if key in manifest.settings}
    )
    if len(settings.models) > 1 and not backend_cls.MULTIPLE_MODELS:
        raise UnlearnError(
            f"--model given {len(settings.models)} times: suite {manifest.name} certifies one model; "
            "pass one --model PATH"
        )
    backend = backend_cls(manifest, settings)
    # A model given as its own original/reference makes the relative checks vacuous.
    backend.warn(same_model_roles(settings))
    expanded = replace(manifest, checks=backend.expand_checks(manifest.checks))
    backend.manifest = apply_threshold_overrides(expanded, settings.thresholds)
    check_metric_params(backend.manifest)
    return backend


def check_groups(
    manifest: SuiteManifest, checks: list[CheckSpec] | None = None, backend: Backend | None = None
) -> dict[str, str]:
    """Check id → xdist group: the selected checks sharing an expensive input (transitively)
    share a worker (inputs as the backend names them, when given)."""
    from pytest_unlearn.workers import input_groups

    selected = manifest.checks if checks is None else checks
    needs = backend.requires if backend is not None else (lambda spec: METRICS.get(spec.metric).requires)
    groups = input_groups({spec.id: needs(spec) for spec in selected})
    return {check_id: f"{manifest.name}/{group}" for check_id, group in groups.items()}


class _WatchedCache:
    """The run's artifact cache, reporting each entry a backend reads or writes (its key, the
    sha256 of its content and whether it was reused) to ``note``; everything else passes through."""

    def __init__(self, inner: Any, note: Callable[[dict[str, Any]], None]) -> None:
        self._inner = inner
        self._note = note

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _watch(self, kind: str, key: str, call: Callable[[], Any], digest: Callable[[Any], bytes]) -> Any:
        hits = getattr(self._inner, "hits", 0)
        value = call()
        if getattr(self._inner, "root", None) is not None:
            import hashlib

            self._note(
                {
                    "kind": kind,
                    "key": key,
                    "sha256": hashlib.sha256(digest(value)).hexdigest(),
                    "reused": getattr(self._inner, "hits", 0) > hits,
                }
            )
        return value

    def get_or_create(self, kind: str, key: str, suffix: str, produce: Callable[[], bytes]) -> bytes:
        return self._watch(kind, key, lambda: self._inner.get_or_create(kind, key, suffix, produce), bytes)

    def get_or_create_json(self, kind: str, key: str, produce: Callable[[], Any]) -> Any:
        import json

        return self._watch(
            kind,
            key,
            lambda: self._inner.get_or_create_json(kind, key, produce),
            lambda value: json.dumps(value, sort_keys=True, allow_nan=True).encode("utf-8"),
        )
