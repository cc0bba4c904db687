"""The Genμ prompt CSV: ``concept_type, concept_name, direct_prompt, indirect_prompt,
adversarial_prompt`` (extra columns ignored; other headers mapped through the manifest's
``[columns]`` table, e.g. ``concept_name = "concept"``). Pure Python.

Read as the organizers ship it: a byte-order mark, quoted headers (with or without spaces after
the commas), trailing spaces in names are all accepted; prompts are kept as written (typos
included: they are the adversarial test). A row repeated identically is kept once, with one
warning; the same prompt text in two different rows is kept in both (generated once, counted
for each row).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import Located, Warn, deduplicate, no_warning
from pytest_unlearn.manifest import slug

COLUMNS = ("concept_type", "concept_name", "direct_prompt", "indirect_prompt", "adversarial_prompt")
PROMPT_COLUMNS = {"direct": "direct_prompt", "indirect": "indirect_prompt", "adversarial": "adversarial_prompt"}


@dataclass(frozen=True)
class ConceptPrompts:
    name: str
    type: str
    prompts: dict[str, tuple[str, ...]]  # prompt type -> prompts (empty cells skipped)


def clean_name(name: str) -> str:
    """A concept name as written, without outer or doubled spaces ("Golf  Ball " → "Golf Ball")."""
    return " ".join(name.split())


def concept_key(name: str) -> str:
    """How concept names are matched: case, spaces, '_' and '-' ignored ("golf_ball" = "Golf Ball")."""
    return re.sub(r"[\s_\-]+", "", name).casefold()


def _header_name(raw: str) -> str:
    # A header written as `"concept_type", "concept_name"` reaches us with the quotes of the
    # fields after the first one still on (the csv module only unquotes a field that starts
    # with the quote character); a BOM is already gone (utf-8-sig).
    return raw.strip().strip('"').strip()


def load_prompt_csv(
    path: Path,
    mapping: dict[str, str] | None = None,
    flag: str = "--data",
    warn: Warn = no_warning,
) -> dict[str, ConceptPrompts]:
    """Concepts in file order, each with its direct, indirect and adversarial prompts.

    ``warn`` receives the one warning about identical repeated rows (dropped but the first).
    """
    mapping = mapping or {}
    located: list[Located[tuple[str, ...]]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            header = [_header_name(h) for h in next(reader, [])]
            column = {name: mapping.get(name, name) for name in COLUMNS}
            missing = [
                f"{name} (as {column[name]!r})" if column[name] != name else name
                for name in COLUMNS
                if column[name] not in header
            ]
            if missing:
                raise UnlearnError(
                    f"{path}: the prompt CSV lacks the column(s) {', '.join(missing)}; Genμ CSVs have "
                    f"{', '.join(COLUMNS)} (map other headers under [columns] in the manifest)"
                )
            position = {name: header.index(column[name]) for name in COLUMNS}
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                cells = [values[position[name]] if position[name] < len(values) else "" for name in COLUMNS]
                # The whole normalised row: the key under which an identical repeat is dropped.
                row = (cells[0].strip(), clean_name(cells[1]), *(cell.strip() for cell in cells[2:]))
                located.append(Located(reader.line_num, row))
    except FileNotFoundError:
        raise UnlearnError(f"{flag}: no prompt CSV at {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UnlearnError(f"{path}: cannot read the prompt CSV ({exc})") from None
    if not located:
        raise UnlearnError(f"{path}: the prompt CSV has no rows")
    for entry in located:
        if not entry.value[1]:
            raise UnlearnError(f"{path}:{entry.line}: empty {column['concept_name']}")
    unique = deduplicate(located, key=lambda row: row, content=lambda row: row, source=path, what="row")
    warn(unique.warning)
    concepts: dict[str, dict[str, list[str]]] = {}
    types: dict[str, str] = {}
    for concept_type, name, *prompts in unique.rows:
        types.setdefault(name, concept_type)
        entry = concepts.setdefault(name, {kind: [] for kind in PROMPT_COLUMNS})
        for kind, prompt in zip(PROMPT_COLUMNS, prompts):
            if prompt:
                entry[kind].append(prompt)
    keys: dict[str, str] = {}
    for name in concepts:
        for key in {slug(name), concept_key(name)}:
            if key in keys and keys[key] != name:
                raise UnlearnError(
                    f"{path}: concepts {keys[key]!r} and {name!r} differ only in case, spaces or punctuation; "
                    "name each concept one way"
                )
            keys[key] = name
    return {
        name: ConceptPrompts(name, types[name], {k: tuple(v) for k, v in prompts.items()})
        for name, prompts in concepts.items()
    }
