"""SemEval-2025 Task 4 data files: forget/retain prompts, MIA documents, external predictions.

Formats follow the organizers' release: ``forget``/``retain`` as ``.jsonl`` or ``.parquet``
with fields ``id, input, output, task`` (extra fields such as ``split`` are ignored), and
``member.jsonl``/``nonmember.jsonl`` with a ``document`` field. Pure Python (pyarrow only for
parquet), so data problems are reported before any model is loaded.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import Located, Warn, deduplicate, read_text, require_disjoint
from pytest_unlearn.integrity import no_warning as _no_warning

SPLITS = ("forget", "retain")
TASKS = ("Task1", "Task2", "Task3")
KINDS = ("regurgitation", "knowledge")
REQUIRED_FIELDS = ("id", "input", "output", "task")


@dataclass(frozen=True)
class PromptRow:
    """One prompt of the forget or retain set, with the kind its id encodes."""

    id: str
    input: str
    output: str
    task: str
    split: str
    kind: str
    line: int = field(default=0, compare=False)  # where it stands in its file, for errors


@dataclass(frozen=True)
class MIADocument:
    id: str
    document: str


def prompt_kind(row_id: str, source: Path | str) -> str:
    """``…sc<digit>`` is regurgitation (sentence completion), ``…qa<digit>`` is knowledge.

    The official scorer tests ``id[:-1].endswith('sc'|'qa')`` and silently skips other ids;
    we require the trailing digit and refuse unknown ids, so no prompt drops out unnoticed.
    """
    if len(row_id) >= 3 and row_id[-1].isdigit():
        if row_id[:-1].endswith("sc"):
            return "regurgitation"
        if row_id[:-1].endswith("qa"):
            return "knowledge"
    raise UnlearnError(
        f"{source}: cannot tell the prompt kind of id {row_id!r}; SemEval ids end in "
        "'sc<digit>' (sentence completion) or 'qa<digit>' (question answering)"
    )


def document_id(row_id: str) -> str:
    """The document a prompt comes from: its id without the ``sc<digit>``/``qa<digit>`` ending
    (the MIA member file names documents by it)."""
    return row_id[:-3] if len(row_id) >= 3 and row_id[-1].isdigit() and row_id[-3:-1] in ("sc", "qa") else row_id


def read_located_records(path: Path, flag: str | None = None) -> list[Located[dict[str, Any]]]:
    """Rows of a ``.jsonl``, ``.json`` (list), ``.csv`` or ``.parquet`` file with the line (row
    number for parquet and JSON lists, CSV line for CSV) each came from."""
    suffix = path.suffix.lower()
    where = f"{flag} {path}" if flag else str(path)
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(path).to_pylist()
        except FileNotFoundError:
            raise UnlearnError(f"{where}: no such file") from None
        except Exception as exc:  # pyarrow raises its own types for corrupt files
            raise UnlearnError(f"{where}: cannot read the file ({type(exc).__name__}: {exc})") from None
        return [Located(number, record) for number, record in enumerate(table, start=1)]
    text = read_text(path, flag)
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        located = []
        try:
            # line_num is where a row ends (a quoted cell may span lines): name where it starts.
            if reader.fieldnames is None:  # reading it reads the header; None: an empty file
                return []
            end = reader.line_num
            for record in reader:
                located.append(Located(end + 1, dict(record)))
                end = reader.line_num
        except csv.Error as exc:
            raise UnlearnError(f"{where}:{reader.line_num}: malformed CSV ({exc})") from None
        return located
    if suffix == ".json":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnlearnError(f"{where}: invalid JSON ({exc})") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise UnlearnError(f"{where}: expected a JSON list of objects")
        return [Located(number, record) for number, record in enumerate(records, start=1)]
    located = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UnlearnError(f"{where}:{line_no}: invalid JSON line ({exc.msg})") from None
        except RecursionError:
            raise UnlearnError(f"{where}:{line_no}: JSON nested too deeply") from None
        if not isinstance(record, dict):
            raise UnlearnError(f"{where}:{line_no}: each line must be a JSON object")
        located.append(Located(line_no, record))
    return located


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl``, ``.json`` (list) or ``.parquet`` file as dictionaries."""
    return [located.value for located in read_located_records(path)]


def load_prompts(path: Path, split: str, warn: Warn = _no_warning) -> list[PromptRow]:
    """Validated prompt rows of one split file; identical repeated rows are kept once (with a
    warning), an id repeated with other content is an error naming both lines."""
    from pytest_unlearn import domains

    records = read_located_records(path)
    if not records:
        raise UnlearnError(f"{path}: the {split} set is empty; it needs SemEval prompt rows")
    rows: list[Located[PromptRow]] = []
    for located in records:
        record, line = located.value, located.line
        missing = [name for name in REQUIRED_FIELDS if name not in record]
        if missing:
            raise UnlearnError(
                f"{path}:{line}: the row lacks {', '.join(missing)}; SemEval rows need the fields "
                f"{', '.join(REQUIRED_FIELDS)}"
            )
        row_id = str(record["id"])
        task = record["task"]
        if task not in TASKS:
            raise UnlearnError(f"{path}:{line}: row {row_id!r} has task {task!r}; expected one of {', '.join(TASKS)}")
        for name in ("input", "output"):
            if not isinstance(record[name], str):
                raise UnlearnError(f"{path}:{line}: row {row_id!r} has a non-text {name} ({record[name]!r})")
        # An empty reference output is regurgitated by any generation: the check would be vacuous.
        domains.validate(domains.PromptRow, record, f"{path} line {line}")
        row = PromptRow(row_id, record["input"], record["output"], task, split, prompt_kind(row_id, path), line)
        rows.append(Located(line, row))
    unique = deduplicate(rows, key=lambda r: r.id, content=lambda r: (r.input, r.output, r.task), source=path)
    warn(unique.warning)
    return unique.rows


def find_split_file(folder: Path, split: str, flag: str = "--data") -> Path:
    """``forget.jsonl``/``forget.parquet``, else the one ``forget*.jsonl|parquet`` in the folder."""
    for name in (f"{split}.jsonl", f"{split}.parquet"):
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.glob(f"{split}*") if p.suffix in (".jsonl", ".parquet") and p.is_file())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UnlearnError(f"{flag} {folder}: no {split} file; expected {split}.jsonl or {split}.parquet")
    names = ", ".join(p.name for p in candidates)
    raise UnlearnError(f"{flag} {folder}: several {split} files ({names}); keep one or name it {split}.jsonl")


def load_mia(
    folder: Path, flag: str = "--mia-data", warn: Warn = _no_warning
) -> tuple[list[MIADocument], list[MIADocument]]:
    """Member and non-member documents; both sets must be non-empty for an AUC to exist, and
    no document may be in both (it would count as a member and as a non-member)."""
    from pytest_unlearn import domains

    if not folder.is_dir():
        raise UnlearnError(f"{flag} {folder}: no such folder; it needs member.jsonl and nonmember.jsonl")
    sets = []
    where: dict[str, dict[str, int]] = {}
    for name in ("member", "nonmember"):
        path = folder / f"{name}.jsonl"
        if not path.is_file():
            raise UnlearnError(f"{flag} {folder}: {name}.jsonl is missing")
        records = read_located_records(path)
        docs = []
        for located in records:
            record = located.value
            if not isinstance(record.get("document"), str):
                raise UnlearnError(f"{path}:{located.line}: the row lacks a text 'document' field")
            domains.validate(domains.Document, record, f"{path} line {located.line}")
            docs.append(Located(located.line, MIADocument(str(record.get("id", located.line)), record["document"])))
        # Without ids a document is its own key: the same text twice is a repeat, not two documents.
        has_ids = all("id" in r.value for r in records)
        key = (lambda d: d.id) if has_ids else (lambda d: d.document)
        unique = deduplicate(
            docs, key=key, content=lambda d: d.document, source=path, what="id" if has_ids else "document"
        )
        warn(unique.warning)
        if not unique.rows:
            raise UnlearnError(f"{path}: no documents; the membership-inference AUC needs both members and non-members")
        sets.append(unique.rows)
        where[name] = {}
        for located in docs:
            where[name].setdefault(located.value.document, located.line)
    require_disjoint(
        where["member"],
        where["nonmember"],
        first_source=folder / "member.jsonl",
        second_source=folder / "nonmember.jsonl",
        what="document",
        belongs="a document is either a member or a non-member: remove it from one set",
    )
    return sets[0], sets[1]


@dataclass(frozen=True)
class Predictions:
    """Generations made elsewhere, by id, with the line each came from."""

    path: Path
    outputs: dict[str, str]
    lines: dict[str, int]


def load_predictions(path: Path, warn: Warn = _no_warning) -> Predictions:
    """Generations made elsewhere: ``id`` plus ``output`` (ours) or ``model_output`` (official CSV).

    The organizers' multi-GPU runs pad each process by repeating rows: identical repeats are
    kept once with a warning; the same id with another output is an error naming both lines.
    """
    if not path.is_file():
        raise UnlearnError(f"--predictions {path}: no such file")
    rows: list[Located[tuple[str, str]]] = []
    for located in read_located_records(path, "--predictions"):
        record = located.value
        text = record.get("output", record.get("model_output"))
        if record.get("id") in (None, "") or text is None:
            raise UnlearnError(
                f"--predictions {path}:{located.line}: the row needs 'id' and 'output' (or 'model_output')"
            )
        if not isinstance(text, str):
            raise UnlearnError(f"--predictions {path}:{located.line}: the output must be text, got {text!r}")
        rows.append(Located(located.line, (str(record["id"]), text)))
    if not rows:
        raise UnlearnError(f"--predictions {path}: the file holds no predictions")
    unique = deduplicate(rows, key=lambda r: r[0], content=lambda r: r[1], source=f"--predictions {path}")
    warn(unique.warning)
    # pandas reads an empty cell back as NaN and the organizers' script then scores the text
    # 'nan': such an output is more likely a lost generation than the model's words.
    nan_like = [row_id for row_id, text in unique.rows if text.strip().lower() == "nan"]
    if nan_like:
        warn(
            f"--predictions {path}: {len(nan_like)} output(s) are the text 'nan' (e.g. {nan_like[0]!r}), what "
            "an empty generation becomes through pandas; they are scored as that text"
        )
    return Predictions(path, dict(unique.rows), {k: v for k, v in unique.lines.items()})  # type: ignore[misc]
