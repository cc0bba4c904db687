"""TOFU's data files (locuslab/TOFU on the Hugging Face hub, one JSON object per line or a JSON
array): ``forget{01,05,10}_perturbed.json`` and ``retain_perturbed.json`` with ``question``,
``answer``, ``paraphrased_answer``, ``perturbed_answer`` (a list); ``real_authors_perturbed.json``
and ``world_facts_perturbed.json`` with ``question``, ``answer``, ``perturbed_answer``.

Prompts follow TOFU's ``convert_raw_data_to_model_format``: question_start_tag + question +
question_end_tag, then answer_tag + answer, with the tags of the model family
(``config/model_config.yaml``). Pure Python, so bad data stops a run before any model loads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import Located, deduplicate, read_text, require_disjoint

#: Our task name -> (the file's stem, or None for the forget split; whether the base answer of the
#: truth ratio is the paraphrased answer). TOFU's eval_everything.yaml: base_answer_key is
#: paraphrased_answer on retain and forget, answer on real authors and world facts.
TASK_FILES = {
    "retain": "retain_perturbed",
    "real_authors": "real_authors_perturbed",
    "world_facts": "world_facts_perturbed",
}
PARAPHRASED_BASE = ("retain", "forget")
FORGET_SPLIT = re.compile(r"^forget\d\d$")


@dataclass(frozen=True)
class Tags:
    """A model family's prompt tags (TOFU's ``model_config.yaml``)."""

    question_start: str
    question_end: str
    answer: str

    def prompt(self, question: str) -> str:
        """What the model is asked (and generation starts from)."""
        return self.question_start + question + self.question_end

    def answer_text(self, answer: str) -> str:
        return self.answer + answer


@dataclass(frozen=True)
class Question:
    index: str
    question: str
    answer: str
    base_answer: str  # paraphrased answer (retain, forget) or the answer itself
    perturbed: tuple[str, ...]


def read_json_records(path: Path) -> list[dict[str, Any]]:
    """A JSON array of objects, or one object per line (the hub's files)."""
    text = read_text(path)
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise UnlearnError(f"{path}: not JSON or JSON lines ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UnlearnError(f"{path}: expected a list of objects (question, answer, ...)")
    return rows


def load_task(path: Path, task: str, ds_size: int, warnings: list[str] | None = None) -> list[Question]:
    """One task's questions, the first ``ds_size`` (TOFU's ``ds_size``; 0 = all). A question
    repeated with the same answers is kept once (a warning in ``warnings``); repeated with other
    answers, it is an error naming both records."""
    from pytest_unlearn import domains

    rows = read_json_records(path)
    if ds_size > 0:
        rows = rows[:ds_size]
    base_key = "paraphrased_answer" if task in PARAPHRASED_BASE else "answer"
    need = ("question", "answer", base_key, "perturbed_answer")
    questions = []
    width = None
    for line, row in enumerate(rows, 1):
        missing = [k for k in need if k not in row]
        if missing:
            raise UnlearnError(f"{path}: record {line} has no {', '.join(missing)}; TOFU's {path.name} has {need}")
        perturbed = row["perturbed_answer"]
        if isinstance(perturbed, str):
            perturbed = [perturbed]
        if not isinstance(perturbed, list) or not perturbed or not all(isinstance(p, str) for p in perturbed):
            raise UnlearnError(f"{path}: record {line}: perturbed_answer must be a non-empty list of strings")
        if width is not None and len(perturbed) != width:
            raise UnlearnError(
                f"{path}: record {line} has {len(perturbed)} perturbed answers, record 1 has {width}; "
                "TOFU averages the same number for every question"
            )
        width = len(perturbed)
        texts = [row["question"], row["answer"], row[base_key]]
        if not all(isinstance(t, str) for t in texts):
            raise UnlearnError(f"{path}: record {line}: question and answers must be strings")
        # An empty answer has no tokens: no loss, and a ROUGE recall that any output meets.
        domains.validate(
            domains.TofuQuestion,
            {"question": texts[0], "answer": texts[1], "base_answer": texts[2], "perturbed_answer": perturbed},
            f"{path} record {line}",
        )
        questions.append(Question(str(line - 1), texts[0], texts[1], texts[2], tuple(perturbed)))
    if not questions:
        raise UnlearnError(f"{path}: no questions")
    kept = deduplicate(
        [Located(int(q.index) + 1, q) for q in questions],
        key=lambda q: q.question,
        content=lambda q: (q.answer, q.base_answer, q.perturbed),
        source=path,
        what="question",
    )
    if kept.warning and warnings is not None:
        warnings.append(kept.warning.replace("row(s)", "record(s)").replace("lines", "records"))
    return kept.rows


def task_paths(data_dir: Path, forget_split: str) -> dict[str, Path]:
    """Where each task's file is in a TOFU data folder."""
    if not FORGET_SPLIT.match(forget_split):
        raise UnlearnError(f"--setting forget_split={forget_split}: expected forget01, forget05 or forget10")
    paths = {t: data_dir / f"{stem}.json" for t, stem in TASK_FILES.items()}
    paths["forget"] = data_dir / f"{forget_split}_perturbed.json"
    return paths


def load_data(
    data_dir: Path, forget_split: str, ds_size: int, flag: str, warnings: list[str] | None = None
) -> dict[str, list[Question]]:
    if not data_dir.is_dir():
        raise UnlearnError(f"{flag} {data_dir}: no such folder; pass the folder with TOFU's JSON files")
    paths = task_paths(data_dir, forget_split)
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise UnlearnError(
            f"{flag} {data_dir}: no {', '.join(missing)} (forget_split={forget_split}); TOFU's layout has "
            f"{forget_split}_perturbed.json, retain_perturbed.json, real_authors_perturbed.json, "
            "world_facts_perturbed.json"
        )
    data = {task: load_task(path, task, ds_size, warnings) for task, path in paths.items()}
    # A forget question that is also a retain question would be scored as both.
    require_disjoint(
        {q.question: int(q.index) + 1 for q in data["forget"]},
        {q.question: int(q.index) + 1 for q in data["retain"]},
        first_source=paths["forget"],
        second_source=paths["retain"],
        what="question",
        belongs="a question belongs to the forget or the retain set, not both",
    )
    return data


def family_tags(settings: dict[str, Any]) -> Tags:
    """The tags of ``model_family`` from the manifest's ``families`` table; each tag may be
    overridden with ``--setting question_start_tag=...`` (and question_end_tag, answer_tag)."""
    families = settings.get("families") or {}
    family = str(settings.get("model_family", ""))
    if family not in families:
        known = ", ".join(sorted(families)) or "none"
        raise UnlearnError(
            f"--setting model_family={family}: unknown model family (known: {known}); or set "
            "question_start_tag, question_end_tag and answer_tag"
        )
    base = families[family]
    values = {}
    for key in ("question_start_tag", "question_end_tag", "answer_tag"):
        value = settings.get(key)
        value = base.get(key, "") if value is None else value
        if not isinstance(value, str):
            raise UnlearnError(f"--setting {key}: must be a string")
        values[key] = value
    return Tags(values["question_start_tag"], values["question_end_tag"], values["answer_tag"])


def holdout_path(data_dir: Path, forget_split: str) -> Path:
    """TOFU's holdout split of the forget split's size (``holdout10.json`` for ``forget10``)."""
    return data_dir / f"holdout{forget_split[len('forget') :]}.json"


def load_holdout(path: Path, ds_size: int) -> list[Question]:
    """Questions about authors no model was trained on (``question``, ``answer``)."""
    from pytest_unlearn import domains

    rows = read_json_records(path)
    if ds_size > 0:
        rows = rows[:ds_size]
    out = []
    for line, row in enumerate(rows, 1):
        if not isinstance(row.get("question"), str) or not isinstance(row.get("answer"), str):
            raise UnlearnError(f"{path}: record {line} needs the strings question and answer")
        domains.validate(domains.QAPair, row, f"{path} record {line}")
        out.append(Question(str(line - 1), row["question"], row["answer"], row["answer"], ()))
    if not out:
        raise UnlearnError(f"{path}: no questions")
    return out
