"""MMLU in the layout of the SemEval-2025 Task 4 scorer (open-instruct's ``run_mmlu.py``).

Reads the original CSV layout (``dev/<subject>_dev.csv`` and ``test/<subject>_test.csv``,
no header: question, A, B, C, D, answer) or the parquet layout of the ``cais/mmlu`` dataset
(``question``, ``subject``, ``choices``, ``answer`` as an index), and builds the k-shot
prompts exactly as the official script does. Pure Python: no torch here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import Located, Warn, deduplicate, read_text
from pytest_unlearn.integrity import no_warning as _no_warning

CHOICES = ("A", "B", "C", "D")


@dataclass(frozen=True)
class MMLUQuestion:
    """One multiple-choice question with its four options and the answer letter."""

    subject: str
    question: str
    options: tuple[str, str, str, str]
    answer: str


@dataclass(frozen=True)
class MMLUData:
    """Dev (few-shot) and test questions per subject, subjects in sorted order."""

    dev: dict[str, list[MMLUQuestion]]
    test: dict[str, list[MMLUQuestion]]

    @property
    def subjects(self) -> list[str]:
        return sorted(self.test)

    def n_questions(self) -> int:
        return sum(len(rows) for rows in self.test.values())


def format_subject(subject: str) -> str:
    # The official helper prefixes every word with a space, so the header reads
    # "about  high school biology." with two spaces; reproduced on purpose.
    return "".join(" " + word for word in subject.split("_"))


def format_example(question: MMLUQuestion, include_answer: bool = True) -> str:
    """``{q}\\nA. …\\nB. …\\nC. …\\nD. …\\nAnswer:`` followed by `` {answer}\\n\\n`` for shots."""
    text = question.question
    for letter, option in zip(CHOICES, question.options):
        text += f"\n{letter}. {option}"
    text += "\nAnswer:"
    if include_answer:
        text += f" {question.answer}\n\n"
    return text


def build_prompt(dev: list[MMLUQuestion], subject: str, question: MMLUQuestion, shots: int) -> str:
    """The k-shot prompt of the official script: header, the first ``shots`` dev rows, the question."""
    header = f"The following are multiple choice questions (with answers) about {format_subject(subject)}.\n\n"
    return header + "".join(format_example(q) for q in dev[:shots]) + format_example(question, include_answer=False)


def _read_csv_rows(path: Path, subject: str) -> list[Located[MMLUQuestion]]:
    rows: list[Located[MMLUQuestion]] = []
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        end = 0
        for row in reader:
            # line_num is where a row ends (a quoted cell may span lines): name where it starts.
            line_no, end = end + 1, reader.line_num
            if not row:
                continue
            if len(row) != 6:
                raise UnlearnError(
                    f"{path}:{line_no}: an MMLU row needs 6 columns (question, A, B, C, D, answer), "
                    f"found {len(row)}; fix the row or point --mmlu at a valid MMLU folder"
                )
            answer = row[5].strip()
            if answer not in CHOICES:
                raise UnlearnError(
                    f"{path}:{line_no}: MMLU answer must be one of A, B, C, D, found {answer!r}; "
                    "fix the row or point --mmlu at a valid MMLU folder"
                )
            rows.append(Located(line_no, MMLUQuestion(subject, row[0], (row[1], row[2], row[3], row[4]), answer)))
    except csv.Error as exc:
        raise UnlearnError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
    return rows


def _unique_questions(rows: list[Located[MMLUQuestion]], source: Path | str, warn: Warn) -> list[MMLUQuestion]:
    """A question repeated with its options and answer is kept once (with a warning); the same
    question and options with another answer is an error naming both lines."""
    unique = deduplicate(
        rows, key=lambda q: (q.question, q.options), content=lambda q: q.answer, source=source, what="question"
    )
    warn(unique.warning)
    return unique.rows


def _load_csv_layout(root: Path, warn: Warn) -> MMLUData:
    dev: dict[str, list[MMLUQuestion]] = {}
    test: dict[str, list[MMLUQuestion]] = {}
    for path in sorted((root / "test").glob("*_test.csv")):
        subject = path.name[: -len("_test.csv")]
        test[subject] = _unique_questions(_read_csv_rows(path, subject), path, warn)
        dev_path = root / "dev" / f"{subject}_dev.csv"
        if not dev_path.is_file():
            raise UnlearnError(
                f"{dev_path} is missing: every MMLU test subject needs its dev file for the "
                "few-shot examples; add it or point --mmlu at a complete MMLU folder"
            )
        dev[subject] = [located.value for located in _read_csv_rows(dev_path, subject)]
    return MMLUData(dev=dev, test=test)


def _load_parquet_layout(root: Path, warn: Warn) -> MMLUData:
    import pyarrow.parquet as pq  # only needed for this layout

    def read(split: str) -> dict[str, list[MMLUQuestion]]:
        files = sorted(root.glob(f"**/{split}-*.parquet")) + sorted(root.glob(f"**/{split}.parquet"))
        by_subject: dict[str, list[Located[MMLUQuestion]]] = {}
        for path in files:
            for number, record in enumerate(pq.read_table(path).to_pylist(), start=1):
                try:
                    options = tuple(record["choices"])
                    question = MMLUQuestion(
                        record["subject"],
                        record["question"],
                        options,  # type: ignore[arg-type]
                        CHOICES[int(record["answer"])],
                    )
                except (KeyError, IndexError, TypeError, ValueError) as exc:
                    raise UnlearnError(
                        f"{path}: MMLU parquet rows need question, subject, choices (4) and "
                        f"answer (0-3); a row failed with {exc!r}"
                    ) from None
                if len(options) != 4:
                    raise UnlearnError(f"{path}: an MMLU question needs 4 choices, found {len(options)}")
                by_subject.setdefault(question.subject, []).append(Located(number, question))
        return by_subject

    dev = {subject: [located.value for located in rows] for subject, rows in read("dev").items()}
    test = {
        subject: _unique_questions(rows, f"--mmlu {root} (test, subject {subject})", warn)
        for subject, rows in read("test").items()
    }
    return MMLUData(dev=dev, test=test)


def load_mmlu(root: str | Path, warn: Warn = _no_warning) -> MMLUData:
    """Load an MMLU folder in the CSV layout (dev/, test/) or the parquet layout."""
    root = Path(root)
    if not root.is_dir():
        raise UnlearnError(f"--mmlu {root}: no such folder; pass a folder with dev/ and test/ CSVs")
    if (root / "test").is_dir() and any((root / "test").glob("*_test.csv")):
        data = _load_csv_layout(root, warn)
    elif any(root.glob("**/*.parquet")):
        data = _load_parquet_layout(root, warn)
    else:
        raise UnlearnError(
            f"--mmlu {root}: found neither test/<subject>_test.csv files nor parquet files; "
            "pass the MMLU data folder (CSV layout: dev/ and test/)"
        )
    if data.n_questions() == 0:
        raise UnlearnError(f"--mmlu {root}: the folder holds no test questions")
    return data
