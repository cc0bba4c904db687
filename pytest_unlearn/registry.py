"""One generic, typed registry for metrics, suites, evaluation backends, loaders, judges,
detectors and feature extractors.

Modelled on lm-evaluation-harness' ``api/registry.py``: entries may be registered eagerly or as
lazy ``"module:attr"`` strings (so listing what exists imports nothing heavy), names are unique
and an unknown name gets a "did you mean" suggestion. Every entry records the package that
declared it: a second declaration of a name is an error naming both packages, unless it is the
same reference again (a lazy entry being filled in by its decorator) or an explicit override
(``override=True``), which is logged. Packages, ours included (``builtins``), declare entries
through the entry-point groups ``pytest_unlearn.<kind>s`` (for example
``pytest_unlearn.metrics``); an entry point's value is a ``"module:attr"`` reference, loaded
the first time the name is looked up.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from pytest_unlearn.errors import UnlearnError

T = TypeVar("T")
LOG = logging.getLogger("pytest_unlearn.registry")
# The declaring package of built-in entries and of entries registered in code.
BUILTIN = "pytest-unlearn"


def _reference_of(obj: Any) -> str:
    """``"module:attr"`` of a function, class or decorated metric, as an entry point spells it."""
    target = getattr(obj, "fn", obj)  # a Metric: the function it was made from
    module = getattr(target, "__module__", None)
    name = getattr(target, "__name__", None)
    return f"{module}:{name}" if module and name else ""


def load_reference(reference: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise UnlearnError(f"invalid reference {reference!r}: expected 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnlearnError(
            f"cannot import {module_name!r} for {reference!r}: {exc}; install the package's "
            "extra (e.g. pip install -c constraints.txt -e '.[llm]')"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise UnlearnError(f"{module_name!r} has no attribute {attribute!r} ({reference!r})") from None


class Registry(Generic[T]):
    """Named entries of one kind, each either an object of type ``T`` or a lazy reference."""

    def __init__(self, kind: str, validate: Callable[[Any], T] | None = None) -> None:
        self.kind = kind
        self.entry_point_group = f"pytest_unlearn.{kind}s"
        self._validate = validate
        self._entries: dict[str, T | str] = {}
        # name -> (declaring package, "module:attr" the entry came from)
        self._origins: dict[str, tuple[str, str]] = {}
        self._entry_points_loaded = False
        #: The explicit overrides of this registry, as logged: (name, old package, new package).
        self.overrides: list[tuple[str, str, str]] = []

    def register(
        self,
        name: str,
        entry: T | str,
        *,
        package: str = BUILTIN,
        reference: str | None = None,
        override: bool = False,
        replace: bool = False,
    ) -> None:
        """Declare ``name``; ``reference`` is where the object lives (``"module:attr"``).

        ``replace`` is the older spelling of ``override``."""
        reference = entry if isinstance(entry, str) else (reference or _reference_of(entry))
        if override or replace:
            # An override replaces what the installed packages declare: read their entry points
            # first, or the first look-up would read them after it and find the name twice.
            self._load_entry_points()
        if name in self._origins:
            old_package, old_reference = self._origins[name]
            if old_reference == reference and old_reference:
                # The same declaration again (a lazy entry filled in by its decorator, a module
                # imported twice): keep the loaded object.
                if not isinstance(entry, str):
                    self._entries[name] = entry
                return
            if not (override or replace):
                raise UnlearnError(
                    f"{self.kind} {name!r} is registered twice: by {old_package} ({old_reference or 'in code'}) and by "
                    f"{package} ({reference or 'in code'}); rename one, or override it explicitly "
                    f"(register(..., override=True))"
                )
            LOG.warning(
                "%s %r of %s (%s) overridden by %s (%s)",
                self.kind,
                name,
                old_package,
                old_reference,
                package,
                reference,
            )
            self.overrides.append((name, old_package, package))
        self._entries[name] = entry
        self._origins[name] = (package, reference or "")

    def package(self, name: str) -> str:
        """The package that declared ``name``."""
        self._load_entry_points()
        return self._origins[name][0]

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for point in entry_points(group=self.entry_point_group):
            # A package may not replace another's entry silently: same rule as register().
            package = point.dist.name if point.dist is not None else "an unnamed distribution"
            self.register(point.name, point.value, package=package)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=1, cutoff=0.5)
            hint = f" Did you mean: {close[0]}?" if close else ""
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnlearnError(f"Unknown {self.kind} {name!r}.{hint} Known: {known}")
        entry = self._entries[name]
        if isinstance(entry, str):
            loaded = load_reference(entry)
            entry = self._validate(loaded) if self._validate else loaded
            self._entries[name] = entry
        return entry  # type: ignore[return-value]


@dataclass(frozen=True)
class Measurement:
    """A metric's value on one evaluation, with the sample size it rests on."""

    value: float
    n: int
    details: dict[str, Any] = field(default_factory=dict)


def ratio_to_reference(value: float, reference: float, n: int, details: dict[str, Any]) -> Measurement:
    """``value / reference``: a measure of the model relative to the same measure of the model
    before unlearning or of the reference model (NaN when the reference scores 0, a ratio that
    cannot pass a gate). ``details`` names both numbers for the scorecard."""
    return Measurement(value / reference if reference > 0 else float("nan"), n, details)


@dataclass(frozen=True)
class Metric:
    """A registered metric: its function, direction, unit and the inputs it needs.

    ``fn(inputs, **params) -> Measurement``. ``requires`` names the expensive inputs the
    evaluation backend must compute first (e.g. ``"text"``, ``"mia"``, ``"mmlu"``), so each is
    computed once and shared by every check that needs it.
    """

    name: str
    fn: Callable[..., Measurement]
    higher_is_better: bool
    unit: str
    requires: tuple[str, ...]
    description: str = ""
    # False for deterministic quantities (e.g. a weight norm): no bootstrap interval then.
    sampled: bool = True
    # The metric's value on every bootstrap replicate at once, ``batched(replicates, **params)
    # -> ndarray``, where ``replicates`` is what the inputs' ``resample_batch`` draws; without
    # it the interval calls ``fn`` once per replicate.
    batched: Callable[..., Any] | None = field(default=None, compare=False)

    def __call__(self, inputs: Any, **params: Any) -> Measurement:
        return self.fn(inputs, **params)

    def vectorized(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: register ``fn`` as this metric's :attr:`batched` form (same values as
        ``fn`` replicate by replicate; a test compares them)."""
        object.__setattr__(self, "batched", fn)
        return fn


def _as_metric(obj: Any) -> Metric:
    if not isinstance(obj, Metric):
        raise UnlearnError(f"metric entry {obj!r} is not a pytest_unlearn Metric (use @metric)")
    return obj


METRICS: Registry[Metric] = Registry("metric", _as_metric)
# Suites map a name to the path of their TOML manifest.
SUITES: Registry[str] = Registry("suite")
# Evaluation backends: classes that turn a manifest + run settings into metric inputs.
BACKENDS: Registry[type] = Registry("backend")
# Model loaders and concept judges (the diffusion suites add theirs).
LOADERS: Registry[Callable[..., Any]] = Registry("loader")
JUDGES: Registry[Callable[..., Any]] = Registry("judge")
# Unsafe-content detectors (NudeNet, ...) and image feature extractors (FID's Inception, ...):
# factories, entry-point groups ``pytest_unlearn.detectors`` and ``pytest_unlearn.extractors``.
DETECTORS: Registry[Callable[..., Any]] = Registry("detector")
EXTRACTORS: Registry[Callable[..., Any]] = Registry("extractor")


def metric(
    name: str,
    *,
    higher_is_better: bool,
    unit: str,
    requires: tuple[str, ...] = (),
    description: str = "",
    sampled: bool = True,
    registry: Registry[Metric] = METRICS,
) -> Callable[[Callable[..., Measurement]], Metric]:
    """Decorator that turns a function into a registered :class:`Metric`."""

    def wrap(fn: Callable[..., Measurement]) -> Metric:
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        entry = Metric(name, fn, higher_is_better, unit, requires, doc, sampled)
        registry.register(name, entry)
        return entry

    return wrap
