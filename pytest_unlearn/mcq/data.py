"""Multiple-choice questions, their prompts and MMLU in lm-evaluation-harness' form.

A suite's subsets are declared in its manifest (``[settings.subsets.NAME]``: the file name in
``--data`` and the description line); each file holds rows ``question``, ``choices`` (a list)
and ``answer`` (an index into ``choices``), as the published WMDP files (``cais/wmdp``) do, in
JSON lines, a JSON array or parquet. The prompt is lm-eval's ``multiple_choice`` request: the
context ``description + doc_to_text`` and one continuation ``target_delimiter + label`` per
choice. Pure Python: no torch here.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import Located, Warn, deduplicate, read_text
from pytest_unlearn.integrity import no_warning as _no_warning

#: lm-eval's ``doc_to_text`` of ``wmdp/_default_template_yaml`` and ``mmlu/default/_default_template_yaml``
#: (``{{question.strip()}}\nA. {{choices[0]}}\nB. ...\nAnswer:``) in Python's format syntax.
LM_EVAL_TEMPLATE = "{question}\nA. {choices[0]}\nB. {choices[1]}\nC. {choices[2]}\nD. {choices[3]}\nAnswer:"
#: lm-eval's ``doc_to_choice`` of both tasks.
LM_EVAL_LABELS = ("A", "B", "C", "D")
#: lm-eval's default ``target_delimiter`` (between the context and each choice) and ``fewshot_delimiter``.
TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"
#: Where ``--data`` files of a subset may be: ``NAME.jsonl`` and the others, or a folder ``NAME/``
#: holding them (the Hugging Face layout ``wmdp-bio/test-00000-of-00001.parquet``).
SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class Question:
    """One multiple-choice question of a subset: its row number (1-based line or record) in
    ``source``, the question, its choices and the index of the right one."""

    subset: str
    index: int
    question: str
    choices: tuple[str, ...]
    answer: int
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class Template:
    """How a question becomes lm-eval's request: ``text`` formats ``{question}`` and
    ``{choices[i]}``; the continuations are ``delimiter + label``; the question is stripped
    first when ``strip_question`` (lm-eval's ``question.strip()``)."""

    text: str = LM_EVAL_TEMPLATE
    labels: tuple[str, ...] = LM_EVAL_LABELS
    delimiter: str = TARGET_DELIMITER
    strip_question: bool = True

    def doc_to_text(self, question: str, choices: tuple[str, ...]) -> str:
        return self.text.format(question=question.strip() if self.strip_question else question, choices=choices)

    def continuations(self) -> list[str]:
        return [self.delimiter + label for label in self.labels]

    def validate(self, where: str) -> None:
        """Only ``{question}`` and ``{choices[i]}`` fields, every i a choice the labels name."""
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.text) if f is not None]
        except ValueError as exc:
            raise UnlearnError(f"{where}: template {self.text!r} is not a valid format string ({exc})") from None
        for name in fields:
            if name != "question" and not name.startswith("choices["):
                raise UnlearnError(
                    f"{where}: template field {{{name}}} is unknown; use {{question}} and {{choices[0]}}, "
                    "{choices[1]}, ..."
                )
        try:
            self.doc_to_text("q", tuple(str(i) for i in range(len(self.labels))))
        except (IndexError, KeyError, ValueError, AttributeError) as exc:
            raise UnlearnError(
                f"{where}: template {self.text!r} does not fit {len(self.labels)} choices "
                f"(labels {', '.join(self.labels)}): {exc}"
            ) from None
        if len(set(self.labels)) != len(self.labels) or len(self.labels) < 2:
            raise UnlearnError(f"{where}: labels must be at least two distinct strings, got {list(self.labels)}")


@dataclass(frozen=True)
class Subset:
    """A subset as the manifest declares it: where its file is and its description line."""

    name: str
    file: str
    description: str = ""


@dataclass(frozen=True)
class MCQData:
    """What ``unlearn_data`` gives a wmdp/mcq test: the questions of each subset found, the
    subsets skipped (no file), the template and the MMLU questions (lm-eval's form)."""

    subsets: dict[str, list[Question]]
    skipped: tuple[str, ...] = ()
    template: Template = field(default_factory=Template)
    descriptions: dict[str, str] = field(default_factory=dict)
    mmlu: Any = None

    def context(self, question: Question) -> str:
        """lm-eval's context of a zero-shot question: the description, then ``doc_to_text``."""
        return self.descriptions.get(question.subset, "") + self.template.doc_to_text(
            question.question, question.choices
        )


def find_subset_file(root: Path, subset: Subset) -> Path | None:
    """``NAME.jsonl``/``.json``/``.parquet`` in ``root``, or a folder ``NAME`` holding one such
    file (its ``test`` split when it holds several); None when there is none."""
    found = [root / f"{subset.file}{suffix}" for suffix in SUFFIXES if (root / f"{subset.file}{suffix}").is_file()]
    folder = root / subset.file
    if folder.is_dir():
        inside = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)
        tests = [p for p in inside if p.name.startswith("test")]
        inside = tests or inside
        if len(inside) > 1:
            raise UnlearnError(
                f"--data {root}: the folder {subset.file}/ holds {len(inside)} question files "
                f"({', '.join(p.name for p in inside[:3])}); keep one (the test split) per subset"
            )
        found += inside
    if len(found) > 1:
        raise UnlearnError(
            f"--data {root}: subset {subset.name} has {len(found)} files ({', '.join(p.name for p in found)}); "
            "keep one of them"
        )
    return found[0] if found else None


def _records(path: Path) -> list[tuple[int, Any]]:
    """(line or record number, raw row) of a JSON-lines, JSON-array or parquet file."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq  # only needed for this layout
        except ImportError:
            raise UnlearnError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)") from None
        try:
            return list(enumerate(pq.read_table(path).to_pylist(), start=1))
        except Exception as exc:  # pyarrow raises its own error types for a broken file
            raise UnlearnError(f"{path}: not a readable parquet file ({exc})") from None
    text = read_text(path)
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnlearnError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        return list(enumerate(rows, start=1))
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UnlearnError(f"{path}:{number}: not a JSON object ({exc.msg}); one question per line") from None
    return out


def _parse_row(path: Path, number: int, row: Any, subset: str, n_choices: int) -> Question:
    where = f"{path}:{number}"
    if not isinstance(row, dict):
        raise UnlearnError(f"{where}: a row must be a JSON object with question, choices and answer")
    missing = [k for k in ("question", "choices", "answer") if k not in row]
    if missing:
        raise UnlearnError(f"{where}: a row needs question, choices and answer; {missing[0]!r} is missing")
    question, choices, answer = row["question"], row["choices"], row["answer"]
    if not isinstance(question, str) or not question.strip():
        raise UnlearnError(f"{where}: 'question' must be a non-empty string")
    if not isinstance(choices, (list, tuple)) or not all(isinstance(c, str) for c in choices):
        raise UnlearnError(f"{where}: 'choices' must be a list of strings")
    if len(choices) != n_choices:
        raise UnlearnError(
            f"{where}: 'choices' has {len(choices)} entries, the suite's template takes {n_choices}; "
            "fix the row or the manifest's labels and template"
        )
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < n_choices:
        raise UnlearnError(f"{where}: 'answer' must be an index 0-{n_choices - 1} into 'choices', found {answer!r}")
    return Question(subset, 0, question, tuple(choices), int(answer), str(path), number)


def load_subset(path: Path, subset: str, n_choices: int, warn: Warn = _no_warning) -> list[Question]:
    """The questions of one subset file, in file order. A question repeated with the same
    choices and answer is kept once (a warning); the same question and choices with another
    answer is an error naming both lines."""
    located = [Located(n, _parse_row(path, n, row, subset, n_choices)) for n, row in _records(path)]
    unique = deduplicate(
        located, key=lambda q: (q.question, q.choices), content=lambda q: q.answer, source=path, what="question"
    )
    warn(unique.warning)
    if not unique.rows:
        raise UnlearnError(f"{path}: no questions; pass a file with one question per line")
    return [Question(q.subset, i, q.question, q.choices, q.answer, q.source, q.line) for i, q in enumerate(unique.rows)]


# --------------------------------------------------------------------------------------------
# MMLU in lm-eval's form (lm_eval/tasks/mmlu/default): read by semeval's Hendrycks CSV loader.
# --------------------------------------------------------------------------------------------
def mmlu_description(subject: str) -> str:
    """lm-eval's per-subject description (``_generate_configs.py``: words joined by one space)."""
    return f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_'))}.\n\n"


def mmlu_context(dev: list[Any], subject: str, question: Any, shots: int) -> str:
    """lm-eval's ``fewshot_context`` for MMLU: the description, the first ``shots`` dev rows
    (``first_n`` sampler) each as ``doc_to_text + " " + letter`` joined by ``"\\n\\n"``, the question."""
    template = Template()
    shot_texts = [
        template.doc_to_text(q.question, q.options) + TARGET_DELIMITER + q.answer + FEWSHOT_DELIMITER
        for q in dev[:shots]
    ]
    return mmlu_description(subject) + "".join(shot_texts) + template.doc_to_text(question.question, question.options)


# --------------------------------------------------------------------------------------------
# --predictions: rescoring the log-likelihoods of an earlier run (our artifacts) without a model.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoredRow:
    """One row of a predictions file: where it came from, the question (to check it is this
    data's), and the log-likelihood of each label."""

    line: int
    question: str
    loglikelihoods: tuple[float, ...]


def load_loglikelihoods(
    path: Path, key_fields: tuple[str, str], labels: tuple[str, ...], warn: Warn = _no_warning
) -> dict[str, ScoredRow]:
    """Rows ``{key_fields[0], key_fields[1], loglikelihoods: {label: float}}`` (our
    ``mcq_predictions.jsonl``: subset and index; ``mmlu_predictions.jsonl``: subject and index),
    keyed ``"<first>:<second>"``. Identical repeats are kept once (a warning); the same key with
    other log-likelihoods is an error naming both lines."""
    from pytest_unlearn import domains

    where = f"--predictions {path}"
    rows: list[Located[tuple[str, ScoredRow]]] = []
    for number, record in _records_of(path, where):
        if not isinstance(record, dict) or any(k not in record for k in (*key_fields, "loglikelihoods")):
            raise UnlearnError(
                f"{where}:{number}: a row needs {key_fields[0]}, {key_fields[1]} and loglikelihoods "
                "(the mcq_predictions.jsonl / mmlu_predictions.jsonl a run writes)"
            )
        lls = record["loglikelihoods"]
        if not isinstance(lls, dict) or sorted(lls) != sorted(labels):
            raise UnlearnError(
                f"{where}:{number}: loglikelihoods must map each label ({', '.join(labels)}) to a number, got {lls!r}"
            )
        values = tuple(lls[label] for label in labels)
        # (An int too large for a float is left to the domain check below: math.isnan would overflow.)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v for v in values):
            raise UnlearnError(f"{where}:{number}: loglikelihoods must be numbers (no NaN), got {lls!r}")
        # A log-likelihood is finite and <= 0: Infinity (or a probability written in its place)
        # would win or lose every argmax it enters.
        domains.validate(domains.ScoredChoices, record, f"{where} line {number}")
        row_id = f"{record[key_fields[0]]}:{record[key_fields[1]]}"
        question = str(record.get("question", ""))
        rows.append(Located(number, (row_id, ScoredRow(number, question, tuple(float(v) for v in values)))))
    if not rows:
        raise UnlearnError(f"{where}: the file holds no predictions")
    unique = deduplicate(rows, key=lambda r: r[0], content=lambda r: r[1].loglikelihoods, source=where)
    warn(unique.warning)
    return dict(unique.rows)


def _records_of(path: Path, where: str) -> list[tuple[int, Any]]:
    if not path.is_file():
        raise UnlearnError(f"{where}: no such file")
    text = read_text(path, "--predictions")
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UnlearnError(f"{where}:{number}: not a JSON object ({exc.msg}); one prediction per line") from None
    return out
