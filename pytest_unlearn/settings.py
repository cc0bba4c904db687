"""Suite settings: each suite declares its own, typed (name, type, range, default, help, path).

One resolver fills a suite's settings from its manifest's ``[settings]``, the ini option
``unlearn_setting``, the environment (``PYTEST_UNLEARN_SETTING``) and ``--setting KEY=VALUE``,
and a bad value is one line naming the setting, the value, where it came from and what is
allowed. No torch, no pytest here.
"""

from __future__ import annotations

from typing import Any

from pytest_unlearn.errors import UnlearnError


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
        raise UnlearnError(f"{where}: setting {key!r} must be a {kind.__name__}, got {value!r}")
    if kind is int and value < 0:
        raise UnlearnError(f"{where}: setting {key!r} must be >= 0, got {value!r}")
    return value
