"""The Genμ prompt CSV: ``concept_type, concept_name, direct_prompt, indirect_prompt,
adversarial_prompt`` (extra columns ignored; other headers mapped through the manifest's
``[columns]`` table, e.g. ``concept_name = "concept"``). Pure Python.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.manifest import slug

COLUMNS = ("concept_type", "concept_name", "direct_prompt", "indirect_prompt", "adversarial_prompt")
PROMPT_COLUMNS = {"direct": "direct_prompt", "indirect": "indirect_prompt", "adversarial": "adversarial_prompt"}


@dataclass(frozen=True)
class ConceptPrompts:
    name: str
    type: str
    prompts: dict[str, tuple[str, ...]]  # prompt type -> prompts (empty cells skipped)


def load_prompt_csv(
    path: Path, mapping: dict[str, str] | None = None, flag: str = "--data"
) -> dict[str, ConceptPrompts]:
    """Concepts in file order, each with its direct, indirect and adversarial prompts."""
    mapping = mapping or {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError:
        raise UnlearnError(f"{flag}: no prompt CSV at {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UnlearnError(f"{path}: cannot read the prompt CSV ({exc})") from None
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
    if not rows:
        raise UnlearnError(f"{path}: the prompt CSV has no rows")
    concepts: dict[str, dict[str, list[str]]] = {}
    types: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        name = (row[column["concept_name"]] or "").strip()
        if not name:
            raise UnlearnError(f"{path}:{number}: empty {column['concept_name']}")
        types.setdefault(name, (row[column["concept_type"]] or "").strip())
        entry = concepts.setdefault(name, {kind: [] for kind in PROMPT_COLUMNS})
        for kind, key in PROMPT_COLUMNS.items():
            prompt = (row[column[key]] or "").strip()
            if prompt:
                entry[kind].append(prompt)
    slugs: dict[str, str] = {}
    for name in concepts:
        if slug(name) in slugs:
            raise UnlearnError(f"{path}: concepts {slugs[slug(name)]!r} and {name!r} have the same id {slug(name)!r}")
        slugs[slug(name)] = name
    return {
        name: ConceptPrompts(name, types[name], {k: tuple(v) for k, v in prompts.items()})
        for name, prompts in concepts.items()
    }
