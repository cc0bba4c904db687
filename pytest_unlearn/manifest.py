"""Suite manifests: a versioned TOML file listing a suite's data, settings and checks.

A manifest is data, not code; the plugin turns each ``[[checks]]`` table into one test item::

    [suite]
    name = "semeval"
    version = "2025.1"
    backend = "semeval"          # evaluation backend from the registry

    [data]                      # paths relative to the manifest's folder
    forget = "data/forget.jsonl"

    [settings]                  # backend settings; some are overridable from the command line
    max_new_tokens = 256

    [[checks]]
    id = "task1-regurgitation-forget"
    metric = "semeval.subtask"
    params = { split = "forget", task = "Task1", kind = "regurgitation" }
    op = ">="
    threshold = 0.8
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError, kind_noun

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

OPS = (">=", "<=")
SIDES = ("forget", "retain")
#: The bound on a stress's recovery (the share of the unlearning gap it closes) when the manifest
#: gives none: a quarter (see docs/stress.md).
DEFAULT_RECOVERY_BOUND = 0.25
CHECK_ID = re.compile(r"^[A-Za-z0-9{][A-Za-z0-9_.\-{}]*$")


@dataclass(frozen=True)
class CheckSpec:
    """One check: a metric with parameters compared against a threshold."""

    id: str
    metric: str
    op: str
    threshold: float
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    # "concept": a template expanded once per target concept ("{concept}" in id and params).
    for_each: str | None = None
    # "forget" or "retain": which side of unlearning the check measures. ``--stress`` re-runs the
    # forget side on each transformed model (and reports the retain side beside it).
    side: str | None = None
    # Set on a check made by ``--stress``: the stress's name and the check it repeats.
    stress: str | None = None
    base: str | None = None

    def passes(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


@dataclass(frozen=True)
class SuiteManifest:
    """A parsed suite manifest; ``root`` is the folder relative data paths resolve against."""

    name: str
    version: str
    backend: str
    path: Path
    root: Path
    sha256: str
    description: str = ""
    source: str = ""
    data: dict[str, Path] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    checks: tuple[CheckSpec, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)
    adjacent: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Genμ: the concepts FADE-style adjacency ranks (``[candidates] concepts = [...]``) and the
    # classifier judge's label sets per concept (``[labels]``).
    candidates: tuple[str, ...] = ()
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # ``[stress] recovery``: the default bound of each ``recovery@STRESS`` check.
    recovery_bound: float = DEFAULT_RECOVERY_BOUND
    # The TOML document after ``extends`` (what an extending manifest lays its tables over).
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def check(self, check_id: str) -> CheckSpec:
        for spec in self.checks:
            if spec.id == check_id:
                return spec
        raise KeyError(check_id)


def _require(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise UnlearnError(f"{where}: missing required key {key!r}")
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise UnlearnError(f"{where}: {key!r} must be {kind_noun(kind)}, got {value!r}")
    return value


def parse_check(table: dict[str, Any], where: str) -> CheckSpec:
    """Validate one ``[[checks]]`` table."""
    if not isinstance(table, dict):
        raise UnlearnError(f"{where}: each [[checks]] entry must be a table")
    check_id = _require(table, "id", str, where)
    where = f"{where} (check {check_id!r})"
    if not CHECK_ID.match(check_id):
        raise UnlearnError(f"{where}: check ids use letters, digits, '-', '_' and '.' only")
    metric = _require(table, "metric", str, where)
    op = _require(table, "op", str, where)
    if op not in OPS:
        raise UnlearnError(f"{where}: op must be one of {', '.join(OPS)}, got {op!r}")
    if "threshold" not in table:
        raise UnlearnError(f"{where}: missing required key 'threshold' (a number)")
    threshold = _require(table, "threshold", (int, float), where)
    if not math.isfinite(threshold):
        raise UnlearnError(f"{where}: threshold must be a finite number, got {threshold!r}")
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise UnlearnError(f"{where}: params must be a table")
    for_each = table.get("for_each")
    if for_each not in (None, "concept"):
        raise UnlearnError(f'{where}: for_each must be "concept", got {for_each!r}')
    side = table.get("side")
    if side not in (None, *SIDES):
        raise UnlearnError(f'{where}: side must be "forget" or "retain", got {side!r}')
    unknown = set(table) - {"id", "metric", "op", "threshold", "params", "description", "for_each", "side"}
    if unknown:
        raise UnlearnError(f"{where}: unknown keys {sorted(unknown)}")
    return CheckSpec(
        id=check_id,
        metric=metric,
        op=op,
        threshold=float(threshold),
        params=dict(params),
        description=str(table.get("description", "")),
        for_each=for_each,
        side=side,
    )


# Tables an extending manifest merges key by key into its parent's; any other table it gives
# ([[checks]], [adjacent], [labels], ...) replaces the parent's whole.
MERGED_TABLES = ("suite", "data", "settings")


def _extended(doc: dict[str, Any], path: Path, seen: tuple[Path, ...]) -> tuple[dict[str, Any], str]:
    """``[suite] extends = "tofu"`` (a suite name, or a manifest path relative to this one):
    the parent's document with this one's tables laid over it, and the parent's sha256."""
    where = f"suite manifest {path}"
    parent_ref = doc["suite"].get("extends")
    if not isinstance(parent_ref, str) or not parent_ref:
        raise UnlearnError(f"{where}: extends must name a suite or a manifest path, got {parent_ref!r}")
    if parent_ref.endswith(".toml") or "/" in parent_ref:
        parent_path = (path.parent / parent_ref).resolve()
    else:
        from pytest_unlearn import builtins  # noqa: F401  (registers the built-in suites)
        from pytest_unlearn.registry import SUITES

        try:
            parent_path = Path(SUITES.get(parent_ref)).resolve()
        except UnlearnError as exc:
            raise UnlearnError(f"{where}: extends {parent_ref!r}: {exc}") from None
    if parent_path in seen:
        raise UnlearnError(f"{where}: extends {parent_ref!r} leads back to {parent_path}; a suite cannot extend itself")
    parent = _load(parent_path, f"{where}: extends {parent_ref!r}", seen)
    # The parent's data paths stay relative to the parent's folder.
    base = {**parent.document, "data": {key: str(value) for key, value in parent.data.items()}}
    merged = dict(base)
    for key, value in doc.items():
        if key in MERGED_TABLES and isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = {**base[key], **value}
        else:
            merged[key] = value
    merged["suite"] = {k: v for k, v in merged["suite"].items() if k != "extends"}
    return merged, parent.sha256


def parse_manifest(text: str, path: Path, _seen: tuple[Path, ...] = ()) -> SuiteManifest:
    """Parse manifest text; ``path`` names the file in errors and anchors relative data paths."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UnlearnError(f"suite manifest {path}: invalid TOML ({exc})") from None
    where = f"suite manifest {path}"
    suite = doc.get("suite")
    if not isinstance(suite, dict):
        raise UnlearnError(f"{where}: missing the [suite] table (name, version, backend)")
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if "extends" in suite:
        doc, parent_sha256 = _extended(doc, path, (*_seen, path))
        suite = doc["suite"]
        # The card's manifest hash pins what was inherited too.
        sha256 = hashlib.sha256(f"{sha256}\n{parent_sha256}".encode()).hexdigest()
    name = _require(suite, "name", str, f"{where} [suite]")
    version = _require(suite, "version", str, f"{where} [suite]")
    backend = _require(suite, "backend", str, f"{where} [suite]")
    data_table = doc.get("data", {})
    if not isinstance(data_table, dict) or not all(isinstance(v, str) for v in data_table.values()):
        raise UnlearnError(f"{where}: [data] must map names to relative paths (strings)")
    settings = doc.get("settings", {})
    if not isinstance(settings, dict):
        raise UnlearnError(f"{where}: [settings] must be a table")
    columns = doc.get("columns", {})
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise UnlearnError(f"{where}: [columns] must map expected column names to the file's headers")
    adjacent = doc.get("adjacent", {})
    if not isinstance(adjacent, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in adjacent.values()
    ):
        raise UnlearnError(f"{where}: [adjacent] must map each concept to a list of concept names")
    candidates = doc.get("candidates", {})
    listed = candidates.get("concepts", []) if isinstance(candidates, dict) else None
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise UnlearnError(f"{where}: [candidates] must hold concepts = [a list of concept names]")
    labels = doc.get("labels", {})
    if not isinstance(labels, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in labels.values()
    ):
        raise UnlearnError(f"{where}: [labels] must map each concept to a list of classifier labels")
    stress = doc.get("stress", {})
    bound = stress.get("recovery", DEFAULT_RECOVERY_BOUND) if isinstance(stress, dict) else None
    if (
        not isinstance(stress, dict)
        or set(stress) - {"recovery"}
        or not isinstance(bound, (int, float))
        or isinstance(bound, bool)
        or not 0 <= bound <= 1
    ):
        raise UnlearnError(f"{where}: [stress] takes recovery = a number in [0, 1] (the bound of recovery@STRESS)")
    raw_checks = doc.get("checks", [])
    if not isinstance(raw_checks, list) or not raw_checks:
        raise UnlearnError(f"{where}: no [[checks]] defined; a suite needs at least one check")
    checks = tuple(parse_check(t, f"{where} [[checks]] #{i + 1}") for i, t in enumerate(raw_checks))
    seen: set[str] = set()
    for spec in checks:
        if spec.id in seen:
            raise UnlearnError(f"{where}: check id {spec.id!r} appears twice")
        seen.add(spec.id)
    root = path.parent
    return SuiteManifest(
        name=name,
        version=version,
        backend=backend,
        path=path,
        root=root,
        sha256=sha256,
        document=doc,
        description=str(suite.get("description", "")),
        source=str(suite.get("source", "")),
        data={key: (root / value) for key, value in data_table.items()},
        settings=dict(settings),
        checks=checks,
        columns=dict(columns),
        adjacent={k: tuple(v) for k, v in adjacent.items()},
        candidates=tuple(listed),
        labels={k: tuple(v) for k, v in labels.items()},
        recovery_bound=float(bound),
    )


def load_manifest(path: str | Path) -> SuiteManifest:
    return _load(Path(path), f"--suite {path}", ())


def _load(path: Path, where: str, seen: tuple[Path, ...]) -> SuiteManifest:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnlearnError(f"{where}: no such manifest file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnlearnError(f"{where}: cannot read the manifest ({exc})") from None
    return parse_manifest(text, path.resolve(), seen)


def resolve_suite(name_or_path: str) -> SuiteManifest:
    """A registered suite name (``semeval``) or the path of a ``.toml`` manifest."""
    from pytest_unlearn import builtins  # noqa: F401  (registers the built-in suites)
    from pytest_unlearn.registry import SUITES

    if name_or_path.endswith(".toml") or "/" in name_or_path or Path(name_or_path).is_file():
        return load_manifest(name_or_path)
    try:
        manifest_path = SUITES.get(name_or_path)
    except UnlearnError as exc:
        raise UnlearnError(f"--suite: {exc} (or pass the path of a suite manifest .toml)") from None
    return load_manifest(Path(manifest_path))


def slug(name: str) -> str:
    """``"Van Gogh"`` → ``"van-gogh"``: concept names inside check ids."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def expand_per_concept(checks: tuple[CheckSpec, ...], concepts: list[str]) -> tuple[CheckSpec, ...]:
    """Each ``for_each = "concept"`` template becomes one check per concept, in template order."""
    expanded: list[CheckSpec] = []
    for spec in checks:
        if spec.for_each != "concept":
            expanded.append(spec)
            continue
        for name in concepts:
            params = {k: name if v == "{concept}" else v for k, v in spec.params.items()}
            expanded.append(
                replace(
                    spec,
                    id=spec.id.replace("{concept}", slug(name)),
                    params=params,
                    description=spec.description.replace("{concept}", name),
                    for_each=None,
                )
            )
    return tuple(expanded)


def apply_threshold_overrides(manifest: SuiteManifest, overrides: dict[str, float]) -> SuiteManifest:
    """Return a manifest whose checks carry the ``--threshold CHECK=VALUE`` overrides."""
    known = {spec.id for spec in manifest.checks}
    for check_id in overrides:
        if check_id not in known:
            close = difflib.get_close_matches(check_id, known, n=1, cutoff=0.5)
            hint = f" Did you mean: {close[0]}?" if close else ""
            raise UnlearnError(f"--threshold {check_id}=…: suite {manifest.name!r} has no check {check_id!r}.{hint}")
    checks = tuple(
        replace(spec, threshold=overrides[spec.id]) if spec.id in overrides else spec for spec in manifest.checks
    )
    return replace(manifest, checks=checks)
