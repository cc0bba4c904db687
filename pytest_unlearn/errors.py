"""The one exception type for mistakes a user can fix.

Anything raised as :class:`UnlearnError` reaches the user as a single line that names the flag
or file at fault and says what to do; the plugin turns it into ``pytest.UsageError`` at
configuration time and into a short test failure during a run. Everything else is a bug.
"""

from __future__ import annotations


class UnlearnError(Exception):
    """A user-facing error: one line, naming the flag or file and the fix."""
