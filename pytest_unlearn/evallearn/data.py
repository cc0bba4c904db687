"""Prompt CSVs of the evallearn suite: I2P, adversarial sets, captions, UA/IRA prompts. Pure Python.

Every set is a CSV with a header. The prompt is the first of :data:`PROMPT_COLUMNS` present
(``prompt`` in I2P, Ring-A-Bell and P4D; ``adv_prompt`` in MMA-Diffusion; ``caption`` in COCO).
I2P's per-prompt generation settings are honoured when the columns are there: ``sd_seed``,
``sd_guidance_scale``, ``sd_image_width``, ``sd_image_height`` (P4D's ``evaluation_seed`` and
``evaluation_guidance`` too). A ``categories`` column ("sexual, hate") lets a check keep one
category, as eval-learn filters I2P to ``sexual`` for nudity.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import Located, Warn, deduplicate, no_warning, read_text

PROMPT_COLUMNS = ("prompt", "adv_prompt", "sensitive prompt", "caption", "text")
SEED_COLUMNS = ("sd_seed", "evaluation_seed")
GUIDANCE_COLUMNS = ("sd_guidance_scale", "evaluation_guidance")
WIDTH_COLUMNS = ("sd_image_width",)
HEIGHT_COLUMNS = ("sd_image_height",)


@dataclass(frozen=True)
class PromptRow:
    """One prompt and the generation settings its row asks for (None: the suite's)."""

    prompt: str
    categories: tuple[str, ...] = ()
    seed: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class PromptSet:
    name: str
    path: Path
    rows: tuple[PromptRow, ...]
    has_categories: bool

    def select(self, category: str = "", limit: int = 0) -> list[PromptRow]:
        """The rows of ``category`` (all when empty), then the first ``limit`` (all when 0)."""
        if category and not self.has_categories:
            raise UnlearnError(
                f"{self.path}: no 'categories' column to keep the {category!r} prompts; pass an I2P-format CSV "
                "or drop the check's category"
            )
        rows = [r for r in self.rows if not category or category.lower() in r.categories]
        if not rows:
            raise UnlearnError(f"{self.path}: no prompts of category {category!r} (categories are comma-separated)")
        return rows[:limit] if limit > 0 else rows


def _first(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def _number(raw: str | None, kind: type, where: str, column: str) -> int | float | None:
    if raw is None or not raw.strip() or raw.strip().lower() == "nan":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UnlearnError(f"{where}: {column} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or (kind is int and not value.is_integer()):
        raise UnlearnError(f"{where}: {column} must be {'an integer' if kind is int else 'finite'}, got {raw!r}")
    return int(value) if kind is int else value


def load_prompt_set(name: str, path: Path, flag: str = "--data", warn: Warn = no_warning) -> PromptSet:
    """Read one prompt CSV; a malformed file is an error naming the file, line and column.

    A row repeated cell for cell is kept once (with a warning): it would otherwise count twice
    in a rate. Rows have no ids, so two rows can only repeat, never conflict.
    """
    from pytest_unlearn import domains

    if not path.is_file():
        raise UnlearnError(f"{flag}: no {name} prompt CSV at {path}")
    try:
        with io.StringIO(read_text(path), newline="") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            raw_rows = []
            end = reader.line_num  # the header's last line
            for row in reader:
                # line_num is where a row ends (a quoted cell may span lines): name where it starts.
                raw_rows.append(Located(end + 1, row))
                end = reader.line_num
    except FileNotFoundError:
        raise UnlearnError(f"{flag}: no {name} prompt CSV at {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UnlearnError(f"{path}: cannot read the {name} prompt CSV ({exc})") from None
    prompt_column = _first(header, PROMPT_COLUMNS)
    if prompt_column is None:
        raise UnlearnError(
            f"{path}: no prompt column; the {name} CSV needs a header with one of {', '.join(PROMPT_COLUMNS)}"
        )
    columns = {
        "seed": (_first(header, SEED_COLUMNS), int),
        "guidance": (_first(header, GUIDANCE_COLUMNS), float),
        "width": (_first(header, WIDTH_COLUMNS), int),
        "height": (_first(header, HEIGHT_COLUMNS), int),
    }
    category_column = _first(header, ("categories",))
    unique = deduplicate(
        raw_rows,
        key=lambda row: tuple((str(k), str(v)) for k, v in row.items()),
        content=lambda row: None,
        source=path,
        what="row",
    )
    warn(unique.warning)
    line_of = {id(located.value): located.line for located in raw_rows}
    rows = []
    for row in unique.rows:
        number = line_of[id(row)]
        prompt = (row.get(prompt_column) or "").strip()
        if not prompt:
            continue  # a blank cell is not a prompt
        where = f"{path}:{number}"
        values = {
            key: _number(row.get(column), kind, where, column) if column else None
            for key, (column, kind) in columns.items()
        }
        for key, (column, _) in columns.items():
            if values[key] is not None:  # a seed of -1 or a width of 0 is no image the suite can make
                domains.check(domains.GENERATION[key], values[key], f"{path} line {number}", str(column))
        categories = ()
        if category_column:
            categories = tuple(c.strip().lower() for c in (row.get(category_column) or "").split(",") if c.strip())
        rows.append(PromptRow(prompt, categories, **values))
    if not rows:
        raise UnlearnError(f"{path}: the {name} prompt CSV has no prompts")
    return PromptSet(name, path, tuple(rows), category_column is not None)
