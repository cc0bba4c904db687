"""The one exception type for mistakes a user can fix.

Anything raised as :class:`UnlearnError` reaches the user as a single line that names the flag
or file at fault and says what to do; the plugin turns it into ``pytest.UsageError`` at
configuration time and into a short test failure during a run. Everything else is a bug.
"""

from __future__ import annotations


class UnlearnError(Exception):
    """A user-facing error: one line, naming the flag or file and the fix."""


_NOUNS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a table", list: "a list"}


def kind_noun(kind: type | tuple[type, ...]) -> str:
    """What a value of ``kind`` is called in an error line ("an integer", not "a int"); an int or
    a float together are "a number"."""
    kinds = set(kind) if isinstance(kind, tuple) else {kind}
    if kinds == {int, float}:
        return "a number"
    return " or ".join(_NOUNS.get(k, f"a {k.__name__}") for k in sorted(kinds, key=lambda k: k.__name__))
