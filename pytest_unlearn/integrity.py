"""What a data loader did with every row: duplicates, conflicts, stray ids, overlapping sets.

A gate is only as trustworthy as its inputs. The organizers' multi-GPU scripts pad every
process by repeating rows (accelerate's ``apply_padding``), so identical duplicates are a real
and harmless artefact: they are kept once, with one warning. A duplicate that *disagrees* with
its twin would let the later row silently decide a verdict: that is an error naming the file,
the key and both lines. Pure Python; every loader of every suite uses these helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pytest_unlearn.errors import UnlearnError

T = TypeVar("T")

#: How many example keys a warning or error lists before "…".
EXAMPLES = 3

#: Where a loader sends its findings (``Backend.warn``: the scorecard, or an error under --unlearn-strict).
Warn = Callable[[str | None], None]


def no_warning(message: str | None) -> None:
    """For callers that only read (tests, verification scripts): findings are dropped."""


@dataclass(frozen=True)
class Located(Generic[T]):
    """A parsed row and the line (or row number) it came from."""

    line: int
    value: T


@dataclass(frozen=True)
class Deduplicated(Generic[T]):
    """The rows kept (first occurrence, file order) and what happened to the others."""

    rows: list[T]
    lines: dict[Hashable, int]  # key -> the line of the row kept
    dropped: int  # identical duplicates dropped
    warning: str | None


def _show(key: Hashable) -> str:
    text = repr(key) if not isinstance(key, tuple) else "(" + ", ".join(repr(k) for k in key) + ")"
    return text if len(text) <= 80 else text[:77] + "..."


def deduplicate(
    rows: Iterable[Located[T]],
    *,
    key: Callable[[T], Hashable],
    content: Callable[[T], Any],
    source: str | Path,
    what: str = "id",
) -> Deduplicated[T]:
    """Keep the first of each key; identical repeats are dropped (counted in one warning),
    a repeat whose ``content`` differs is an :class:`UnlearnError` naming both lines."""
    kept: list[T] = []
    first: dict[Hashable, tuple[int, Any]] = {}
    repeats: list[tuple[Hashable, int, int]] = []
    for located in rows:
        row_key = key(located.value)
        if row_key in first:
            line, seen_content = first[row_key]
            if content(located.value) != seen_content:
                raise UnlearnError(
                    f"{source}: {what} {_show(row_key)} appears on lines {line} and {located.line} with "
                    f"different content; keep one of them (a later row must not silently decide a verdict)"
                )
            repeats.append((row_key, line, located.line))
            continue
        first[row_key] = (located.line, content(located.value))
        kept.append(located.value)
    warning = None
    if repeats:
        examples = ", ".join(f"{_show(k)} on lines {a} and {b}" for k, a, b in repeats[:EXAMPLES])
        more = ", ..." if len(repeats) > EXAMPLES else ""
        warning = (
            f"{source}: {len(repeats)} identical duplicate row(s) kept once ({examples}{more}); "
            "multi-process runs pad their output this way"
        )
    return Deduplicated(kept, {k: line for k, (line, _) in first.items()}, len(repeats), warning)


def require_disjoint(
    first: Mapping[Hashable, int],
    second: Mapping[Hashable, int],
    *,
    first_source: str | Path,
    second_source: str | Path,
    what: str,
    belongs: str,
) -> None:
    """No key in both sets (a prompt in forget *and* retain, a document member *and* not)."""
    shared = [k for k in first if k in second]
    if shared:
        k = shared[0]
        more = f" (and {len(shared) - 1} more)" if len(shared) > 1 else ""
        raise UnlearnError(
            f"{what} {_show(k)} is in both {first_source} (line {first[k]}) and {second_source} "
            f"(line {second[k]}){more}; {belongs}"
        )


def match_ids(predicted: Mapping[str, int], known: Iterable[str], *, source: str | Path, flag: str) -> str | None:
    """Prediction ids that are in no data file: a warning with the count and the first few;
    none matching at all is an error (a file of another split or data version)."""
    known_ids = set(known)
    stray = [row_id for row_id in predicted if row_id not in known_ids]
    if not stray:
        return None
    examples = ", ".join(repr(s) for s in stray[:EXAMPLES]) + (", ..." if len(stray) > EXAMPLES else "")
    if len(stray) == len(predicted):
        raise UnlearnError(
            f"{flag} {source}: none of its {len(predicted)} ids is in the data (e.g. {examples}); "
            "it belongs to another split or data version: pass the predictions of this --data"
        )
    return f"{flag} {source}: {len(stray)} id(s) are in no data file and were ignored ({examples})"


def read_text(path: Path, flag: str | None = None) -> str:
    """A data file as UTF-8 text. A leading BOM (spreadsheet exports add one) is dropped; a file
    that is not UTF-8 is one line naming the file, the line and the byte."""
    where = f"{flag} {path}" if flag else str(path)
    from pytest_unlearn.files import input_file_problem

    problem = input_file_problem(path)
    if problem is not None:
        raise UnlearnError(f"{where}: {problem}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UnlearnError(f"{where}: no such file") from None
    except OSError as exc:
        raise UnlearnError(f"{where}: cannot read the file ({exc.strerror or exc})") from None
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + bom
        line = raw[:offset].count(b"\n") + 1
        raise UnlearnError(
            f"{where}:{line}: not UTF-8 text (byte {offset}: {exc.reason}); save the file as UTF-8"
        ) from None
