"""SemEval-2025 Task 4 data files: forget/retain prompts, MIA documents, external predictions.

Formats follow the organizers' release: ``forget``/``retain`` as ``.jsonl`` or ``.parquet``
with fields ``id, input, output, task`` (extra fields such as ``split`` are ignored), and
``member.jsonl``/``nonmember.jsonl`` with a ``document`` field. Pure Python (pyarrow only for
parquet), so data problems are reported before any model is loaded.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError

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


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl``, ``.json`` (list) or ``.parquet`` file as dictionaries."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnlearnError(f"{path}: no such file") from None
    except Exception as exc:  # pyarrow raises its own types for corrupt files
        raise UnlearnError(f"{path}: cannot read the file ({type(exc).__name__}: {exc})") from None
    if suffix == ".json":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnlearnError(f"{path}: invalid JSON ({exc})") from None
        if not isinstance(records, list):
            raise UnlearnError(f"{path}: expected a JSON list of objects")
        return records
    records = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UnlearnError(f"{path}:{line_no}: invalid JSON line ({exc.msg})") from None
        if not isinstance(record, dict):
            raise UnlearnError(f"{path}:{line_no}: each line must be a JSON object")
        records.append(record)
    return records


def load_prompts(path: Path, split: str) -> list[PromptRow]:
    """Validated prompt rows of one split file."""
    records = read_records(path)
    if not records:
        raise UnlearnError(f"{path}: the {split} set is empty; it needs SemEval prompt rows")
    rows: list[PromptRow] = []
    seen: set[str] = set()
    for number, record in enumerate(records, start=1):
        missing = [name for name in REQUIRED_FIELDS if name not in record]
        if missing:
            raise UnlearnError(
                f"{path}: row {number} lacks {', '.join(missing)}; SemEval rows need the fields "
                f"{', '.join(REQUIRED_FIELDS)}"
            )
        row_id = str(record["id"])
        if row_id in seen:
            raise UnlearnError(f"{path}: id {row_id!r} appears twice; ids must be unique")
        seen.add(row_id)
        task = record["task"]
        if task not in TASKS:
            raise UnlearnError(f"{path}: row {row_id!r} has task {task!r}; expected one of {', '.join(TASKS)}")
        for name in ("input", "output"):
            if not isinstance(record[name], str):
                raise UnlearnError(f"{path}: row {row_id!r} has a non-text {name} ({record[name]!r})")
        rows.append(PromptRow(row_id, record["input"], record["output"], task, split, prompt_kind(row_id, path)))
    return rows


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


def load_mia(folder: Path, flag: str = "--mia-data") -> tuple[list[MIADocument], list[MIADocument]]:
    """Member and non-member documents; both sets must be non-empty for an AUC to exist."""
    if not folder.is_dir():
        raise UnlearnError(f"{flag} {folder}: no such folder; it needs member.jsonl and nonmember.jsonl")
    sets = []
    for name in ("member", "nonmember"):
        path = folder / f"{name}.jsonl"
        if not path.is_file():
            raise UnlearnError(f"{flag} {folder}: {name}.jsonl is missing")
        docs = []
        for number, record in enumerate(read_records(path), start=1):
            if not isinstance(record.get("document"), str):
                raise UnlearnError(f"{path}: row {number} lacks a text 'document' field")
            docs.append(MIADocument(str(record.get("id", number)), record["document"]))
        if not docs:
            raise UnlearnError(f"{path}: no documents; the membership-inference AUC needs both members and non-members")
        sets.append(docs)
    return sets[0], sets[1]


def load_predictions(path: Path) -> dict[str, str]:
    """Generations made elsewhere: ``id`` plus ``output`` (ours) or ``model_output`` (official CSV)."""
    if not path.is_file():
        raise UnlearnError(f"--predictions {path}: no such file")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            records: list[dict[str, Any]] = list(csv.DictReader(handle))
    else:
        records = read_records(path)
    predictions: dict[str, str] = {}
    for number, record in enumerate(records, start=1):
        text = record.get("output", record.get("model_output"))
        if "id" not in record or text is None:
            raise UnlearnError(f"--predictions {path}: row {number} needs 'id' and 'output' (or 'model_output')")
        predictions[str(record["id"])] = str(text)
    if not predictions:
        raise UnlearnError(f"--predictions {path}: the file holds no predictions")
    return predictions
