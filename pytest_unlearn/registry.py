"""One generic, typed registry for metrics, suites, evaluation backends, loaders, judges,
detectors and feature extractors.

Modelled on lm-evaluation-harness' ``api/registry.py``: entries may be registered eagerly or as
lazy ``"module:attr"`` strings (so listing what exists imports nothing heavy), names are unique
(a duplicate is an error unless ``replace=True``), and an unknown name gets a "did you mean"
suggestion. Third-party packages add entries through the entry-point group
``pytest_unlearn.<kind>s`` (for example ``pytest_unlearn.metrics``); an entry point's value is
a ``"module:attr"`` reference, loaded the first time the name is looked up.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from pytest_unlearn.errors import UnlearnError

T = TypeVar("T")


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
        self._entry_points_loaded = False

    def register(self, name: str, entry: T | str, *, replace: bool = False) -> None:
        if not replace and name in self._entries:
            raise UnlearnError(f"{self.kind} {name!r} is registered twice; rename one or pass replace=True")
        self._entries[name] = entry

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for point in entry_points(group=self.entry_point_group):
            # A plugin package may not override a built-in silently: same rule as register().
            self.register(point.name, point.value)

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


def _as_attack(obj: Any) -> Any:
    from pytest_unlearn.attacks import Attack

    if not isinstance(obj, Attack):
        raise UnlearnError(f"attack entry {obj!r} is not a pytest_unlearn.attacks.Attack")
    return obj


# Membership-inference attacks on token statistics (pytest_unlearn.attacks.Attack), shared by
# suites; entry-point group ``pytest_unlearn.attacks``.
ATTACKS: Registry[Any] = Registry("attack", _as_attack)


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
        registry.register(name, entry, replace=True)
        return entry

    return wrap
