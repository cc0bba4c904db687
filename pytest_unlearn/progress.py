"""How far a long phase is (generation, losses, images): items done of the total, time elapsed
and an estimate of the time left, as one short line at a time. Pure Python: the lines go to
whatever callable the backend was given (the plugin points it at pytest's terminal writer)."""

from __future__ import annotations

import time
from collections.abc import Callable


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class PhaseProgress:
    """``advance(n)`` after each batch; a line goes out on the first batch, then at most every
    ``every_s`` seconds or at each tenth of the way (whichever comes later), and at the end.

    The estimate is the mean time per item so far times the items left: generation and
    losses cost about the same per item (a cached batch costs nothing, and the estimate then
    shrinks as the run goes)."""

    def __init__(
        self,
        write: Callable[[str], None],
        label: str,
        total: int,
        *,
        unit: str = "",
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        detail: Callable[[], str] | None = None,
    ) -> None:
        self.write = write
        self.label = label
        self.total = max(int(total), 0)
        self.unit = unit
        self.every_s = every_s
        self.clock = clock
        self.detail = detail  # e.g. how many items came from the cache, said at the end
        self.started = clock()
        self.done = 0
        self._last_line: float | None = None
        self._last_tenth = -1
        if self.total:
            write(f"unlearn: {label}: 0/{self.total}{' ' + unit if unit else ''}, starting")

    def line(self) -> str:
        elapsed = self.clock() - self.started
        unit = f" {self.unit}" if self.unit else ""
        text = f"unlearn: {self.label}: {self.done}/{self.total}{unit}, {duration(elapsed)} elapsed"
        if self.done >= self.total:
            return text + ", done" + (f" ({self.detail()})" if self.detail else "")
        if self.done > 0:
            left = elapsed / self.done * (self.total - self.done)
            text += f", about {duration(left)} left"
        return text

    def advance(self, count: int = 1) -> None:
        self.done = min(self.done + int(count), self.total)
        now = self.clock()
        tenth = 10 * self.done // self.total if self.total else 10
        finished = self.done >= self.total
        first = self._last_line is None
        due = not first and now - self._last_line >= self.every_s and tenth > self._last_tenth
        if first or due or finished:
            self._last_line = now
            self._last_tenth = tenth
            self.write(self.line())
