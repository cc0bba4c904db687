"""Suite settings: each suite declares its own, typed (name, type, range, default, help, path).

One resolver fills a suite's settings from its manifest's ``[settings]``, the ini option
``unlearn_setting``, the environment (``PYTEST_UNLEARN_SETTING``) and ``--setting KEY=VALUE``,
and a bad value is one line naming the setting, the value, where it came from and what is
allowed. No torch, no pytest here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError, kind_noun


def typed_setting(settings: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """``settings[key]`` checked against ``kind`` (an int is accepted as a float; a list must
    hold strings; ints are never negative), with an error naming the manifest and the key."""
    value = settings[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UnlearnError(f"{where}: setting {key!r} must be a list of strings, got {value!r}")
        return value
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise UnlearnError(f"{where}: setting {key!r} must be {kind_noun(kind)}, got {value!r}")
    if kind is int and value < 0:
        raise UnlearnError(f"{where}: setting {key!r} must be >= 0, got {value!r}")
    return value


_KIND_NAMES = {int: "int", float: "float", str: "str", bool: "bool", list: "list[str]", dict: "table"}


@dataclass(frozen=True)
class Setting:
    """One setting of a suite: what ``--setting NAME=VALUE`` and the manifest's ``[settings]`` fill.

    ``kind`` is int, float, str, bool, list (of strings) or dict (a TOML table); ``minimum`` and
    ``maximum`` bound numbers (``above`` makes the minimum exclusive); ``choices`` lists the
    strings allowed; ``path`` marks a file or folder (resolved to a ``Path``). ``own_check``: the
    suite's backend checks the value itself, in the suite's own words (listed here, not checked
    twice). ``default`` None: the suite has no default (the manifest gives one, or the setting is
    off).
    """

    name: str
    kind: type
    default: Any = None
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    choices: tuple[str, ...] = ()
    path: bool = False
    own_check: bool = False

    @property
    def type_name(self) -> str:
        return "path" if self.path else _KIND_NAMES.get(self.kind, self.kind.__name__)

    def allowed(self) -> str:
        """What a value must be, in words: ``an integer >= 1``, ``a number in (0, 1]``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is list:
            return "a list of strings"
        if self.kind is dict:
            return "a table"
        if self.kind is str:
            return "a path" if self.path else "a string"
        noun = "an integer" if self.kind is int else "a finite number"
        low = None if self.minimum is None else f"{'>' if self.above else '>='} {self.minimum:g}"
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} in {'(' if self.above else '['}{self.minimum:g}, {self.maximum:g}]"
        if low:
            return f"{noun} {low}"
        return f"{noun} <= {self.maximum:g}" if self.maximum is not None else noun

    def check(self, value: Any) -> Any:
        """The value as the suite uses it; ValueError (saying what is allowed) when it is not."""
        if self.kind is list and isinstance(value, str):
            value = [value]  # --setting concepts="Golf Ball": a one-element list
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        ok = isinstance(value, self.kind) and (self.kind is bool or not isinstance(value, bool))
        if ok and self.kind is list:
            ok = all(isinstance(v, str) for v in value)
        if ok and self.kind is float:
            ok = math.isfinite(value)
        if ok and self.kind in (int, float):
            if self.minimum is not None:
                ok = value > self.minimum if self.above else value >= self.minimum
            if self.maximum is not None:
                ok = ok and value <= self.maximum
        if ok and self.choices:
            ok = value in self.choices
        if not ok:
            raise ValueError(self.allowed())
        if self.path:
            return Path(value).expanduser()
        return value


SEED = Setting("seed", int, 0, "seed of the bootstrap intervals (and of sampled generation)", minimum=0)
BOOTSTRAP_SAMPLES = Setting(
    "bootstrap_samples", int, 1000, "bootstrap replicates behind each check's 95% interval", minimum=1
)
#: What every suite takes.
COMMON: tuple[Setting, ...] = (SEED, BOOTSTRAP_SAMPLES)

Schema = tuple  # of Setting (typed) or str (a name only: a third-party backend's older SETTINGS)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else repr(value)


def _got(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def resolve_settings(
    suite: str,
    manifest_path: Path,
    schema: Schema,
    manifest_settings: dict[str, Any],
    overrides: dict[str, Any],
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The suite's settings: its defaults, then the manifest's ``[settings]``, then the overrides
    (``--setting``, its environment and ini twins, the deprecated flags), each checked against the
    suite's declaration. ``sources`` names where each override came from (default ``--setting``).

    A name the suite does not declare (and the manifest does not give) is refused with a "did
    you mean"; a bad value is one line naming the setting, the value, its source and the rule.
    """
    sources = sources or {}
    typed = {s.name: s for s in schema if isinstance(s, Setting)}
    known = set(manifest_settings) | {s if isinstance(s, str) else s.name for s in schema}
    for key in overrides:
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" Did you mean: {close[0]}?" if close else ""
            flag = sources.get(key, "--setting")
            flag = flag if flag.startswith("--") and flag != "--setting" else f"--setting {key}"
            raise UnlearnError(f"{flag}: suite {suite} has no such setting.{hint} Known: {', '.join(sorted(known))}")
    # Defaults stay the backends' (the card records the settings as given): they are listed, not filled in.
    resolved = {**manifest_settings, **overrides}
    for name, spec in typed.items():
        if name not in resolved or spec.own_check:
            continue
        value = resolved[name]
        try:
            resolved[name] = spec.check(value)
        except ValueError as exc:
            if name in overrides:
                source = sources.get(name, "--setting")
                where = f"--setting {name}={_shown(value)}" + ("" if source == "--setting" else f" (from {source})")
            elif name in manifest_settings:
                where = f"suite manifest {manifest_path} [settings] {name}={_shown(value)}"
            else:
                where = f"suite {suite}'s default {name}={_shown(value)}"
            raise UnlearnError(
                f"{where}: {name} must be {exc}, got {_got(value)} (see python -m pytest_unlearn settings {suite})"
            ) from None
    return resolved


def describe(schema: Schema) -> list[tuple[str, str, str, str]]:
    """(name, type and range, default, help) of each declared setting, for ``--help`` and
    ``python -m pytest_unlearn settings SUITE``."""
    rows = []
    for spec in schema:
        if isinstance(spec, str):
            rows.append((spec, "", "", ""))
            continue
        rule = spec.allowed() if spec.kind in (int, float) or spec.choices else ""
        # "an integer >= 1" -> "int >= 1": the type is already named.
        rule = rule.removeprefix("an integer").removeprefix("a finite number").strip()
        kind = f"{spec.type_name} {rule}".strip()
        if spec.default is None:
            default = ""
        else:
            default = repr(spec.default) if isinstance(spec.default, str) else _shown(spec.default)
        rows.append((spec.name, kind, default, spec.help))
    return rows


def declared(defaults: dict[str, Any], helps: dict[str, str] | None = None) -> tuple[Setting, ...]:
    """Settings declared by a backend's table of defaults (their kind is the default's type);
    the backend checks their values itself."""
    helps = helps or {}
    return tuple(
        Setting(name, type(value), value, helps.get(name, ""), own_check=True) for name, value in defaults.items()
    )


def schema(*parts: Setting | str) -> tuple[Setting | str, ...]:
    """One suite's declarations from several parts; the first declaration of a name wins."""
    seen: dict[str, Setting | str] = {}
    for part in parts:
        seen.setdefault(part if isinstance(part, str) else part.name, part)
    return tuple(seen.values())
