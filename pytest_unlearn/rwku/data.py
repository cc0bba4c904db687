"""RWKU's data files, in the layout its evaluation reads (``process/data_process.py`` writes it
from the hub's ``jinzhuoran/RWKU`` configs; the Google-Drive ``RWKU.zip`` holds the same):

``Target/<n>_<Name>/`` per unlearning target, holding ``forget_level1.json`` (fill-in-the-blank),
``forget_level2.json`` (questions), ``forget_level3.json`` (adversarial probes, ``type`` one of
the nine attacks), ``neighbor_level1.json``, ``neighbor_level2.json`` (``query``, ``answer``,
``level``, ``subject`` each), ``forget_mia.json`` and ``retain_mia.json`` (``text``, ``subject``).
The utility files beside them are read when every selected target has them: ``retain_mmlu.json``
(general ability: MMLU rows with ``question``, ``choices``, ``answer``, ``task`` and their dev
``examples``), ``retain_bbh.json`` (reasoning: Big-Bench Hard rows with ``task``, its few-shot
chain-of-thought prompt ``cot``, ``question`` and ``answer``), ``truthful.json`` (truthfulness:
TruthfulQA rows with ``question`` and ``mc1_targets`` / ``mc2_targets``, each ``choices`` and 0/1
``labels``), ``triviaqa.json`` (factuality: ``question`` and its accepted ``answers``) and
``fluency.json`` (fluency: AlpacaEval ``instruction`` rows). The training files are not read.

``--data`` names the ``Target`` folder, the ``RWKU`` folder holding it, or one target's folder
(RWKU's ``Batch/<1-10>`` folders, several targets pooled, read as one target). Pure Python, so
bad data stops a run before any model loads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_unlearn import domains
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import read_text

PROBE_FILES = ("forget_level1", "forget_level2", "forget_level3", "neighbor_level1", "neighbor_level2")
MIA_FILES = ("forget_mia", "retain_mia")
LAYOUT = (
    "RWKU's layout is Target/<n>_<Name>/ with forget_level1.json, forget_level2.json, forget_level3.json, "
    "neighbor_level1.json, neighbor_level2.json, forget_mia.json, retain_mia.json (its process/data_process.py "
    "writes it)"
)
#: The nine adversarial attack types of forget_level3 (RWKU paper, Table 1; eval_forget.py names
#: "affirmative suffix" and "incontext learning", the two it prompts differently).
ATTACK_TYPES = (
    "prefix injection",
    "affirmative suffix",
    "role playing",
    "multiple choice",
    "reverse query",
    "synonym manipulation",
    "background hint",
    "incontext learning",
    "cross lingual",
)
_FOLDER = re.compile(r"^(\d+)_(.+)$")


def rouge_words(text: str) -> list[str]:
    """The words the ``rouge`` package (1.0.1) scores: split at every ".", each non-empty piece
    re-spaced, the pieces' words (RWKU's ROUGE)."""
    sentences = [" ".join(piece.split()) for piece in text.split(".") if len(piece) > 0]
    return [word for sentence in sentences for word in sentence.split(" ")]


class Probe(domains.Record):
    """A forget or neighbour probe row (``forget_level*.json``, ``neighbor_level*.json``)."""

    query: domains.NonEmptyText
    answer: domains.NonEmptyText
    subject: domains.NonEmptyText
    level: domains.Text | None = None
    type: domains.Text | None = None


class MiaText(domains.Record):
    """A membership-inference passage (``forget_mia.json``, ``retain_mia.json``)."""

    text: domains.NonEmptyText
    subject: domains.Text | None = None


class MmluExample(domains.Record):
    """A dev example of a ``retain_mmlu.json`` row (RWKU's utility_general)."""

    question: domains.NonEmptyText
    choices: list[domains.NonEmptyText]
    answer: domains.Count


class MmluRow(MmluExample):
    """A ``retain_mmlu.json`` row: an MMLU question, its task and its dev examples."""

    task: domains.NonEmptyText
    examples: list[MmluExample]
    subject: domains.Text | None = None


class TriviaRow(domains.Record):
    """A ``triviaqa.json`` row (RWKU's utility_factuality): a question and its accepted answers."""

    question: domains.NonEmptyText
    answers: list[domains.Text]
    subject: domains.Text | None = None


class BbhRow(domains.Record):
    """A ``retain_bbh.json`` row (RWKU's utility_reason): a Big-Bench Hard question, its task's
    few-shot chain-of-thought prompt and the answer (a string, or a list of accepted strings)."""

    task: domains.NonEmptyText
    cot: domains.NonEmptyText
    question: domains.NonEmptyText
    answer: domains.NonEmptyText | list[domains.NonEmptyText]
    subject: domains.Text | None = None


class Targets(domains.Record):
    """TruthfulQA's ``mc1_targets`` / ``mc2_targets``: the answer choices and a 0/1 label each."""

    choices: list[domains.NonEmptyText]
    labels: list[Literal[0, 1]]


class TruthfulRow(domains.Record):
    """A ``truthful.json`` row (RWKU's utility_truthfulness): a TruthfulQA question with its MC1
    (one true choice) and MC2 (every true choice) targets."""

    question: domains.NonEmptyText
    mc1_targets: Targets
    mc2_targets: Targets
    subject: domains.Text | None = None


class FluencyRow(domains.Record):
    """A ``fluency.json`` row (RWKU's utility_fluency): an AlpacaEval instruction."""

    instruction: domains.NonEmptyText
    subject: domains.Text | None = None


#: RWKU's utility sets: name -> file stem in a target's folder (RWKU's workflow reads these names).
UTILITY_FILES = {
    "general": "retain_mmlu",
    "reasoning": "retain_bbh",
    "truthfulness": "truthful",
    "factuality": "triviaqa",
    "fluency": "fluency",
}


@dataclass(frozen=True)
class ProbeRow:
    """One probe as the scorer reads it: which set and level, its attack type (level 3), the target."""

    set: str  # "forget" or "neighbor"
    level: str  # "1", "2", "3"
    type: str | None
    target: str
    query: str
    answer: str
    subject: str

    def record(self) -> dict[str, Any]:
        return {"level": self.level, "type": self.type, "subject": self.subject, "query": self.query,
                "answer": self.answer}  # fmt: skip


@dataclass(frozen=True)
class Target:
    number: int | None
    name: str
    folder: Path
    probes: dict[str, list[ProbeRow]]  # file stem -> rows
    mia: dict[str, list[str]]  # "forget", "retain" -> texts
    utility: dict[str, list[Any]] | None = None  # UTILITY_FILES name -> rows, the files there


@dataclass(frozen=True)
class RwkuData:
    """What ``unlearn_data`` gives an rwku test: the selected targets, in order."""

    folder: Path
    targets: list[Target]
    available: list[str]

    def probes(self, set_name: str) -> list[ProbeRow]:
        stems = [s for s in PROBE_FILES if s.startswith(set_name)]
        return [row for t in self.targets for stem in stems for row in t.probes[stem]]

    def utility(self, name: str) -> list[tuple[str, Any]] | None:
        """(target, row) of every question of utility set ``name``, or None when it is absent."""
        if any(name not in (t.utility or {}) for t in self.targets):
            return None
        return [(t.name, row) for t in self.targets for row in (t.utility or {})[name]]

    def mmlu(self) -> list[tuple[str, MmluRow]] | None:
        return self.utility("general")

    def mia(self, split: str) -> list[tuple[str, str]]:
        """(target, text) of every ``split`` ("forget", "retain") member passage."""
        return [(t.name, text) for t in self.targets for text in t.mia[split]]


def _read_json(path: Path) -> list[Any]:
    try:
        rows = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise UnlearnError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); RWKU's files are JSON lists") from None
    if not isinstance(rows, list):
        raise UnlearnError(f"{path}: expected a JSON list of records; {LAYOUT}")
    return rows


def _probes(path: Path, set_name: str, level: str, target: str) -> list[ProbeRow]:
    out = []
    for number, row in enumerate(_read_json(path), 1):
        probe = domains.validate(Probe, row, f"{path} record {number}")
        if probe.level is not None and probe.level != level:
            raise UnlearnError(
                f"{path} record {number}: level {probe.level!r} in a level-{level} file; RWKU's level is the "
                "string of the file's level"
            )
        if not [piece for piece in probe.answer.split(".") if len(piece) > 0]:
            # The rouge package raises on it ("Collections must contain at least 1 sentence").
            raise UnlearnError(
                f'{path} record {number}: field "answer" = {domains.show(probe.answer)} is only full stops, which '
                "RWKU's ROUGE cannot score; fix or regenerate the file"
            )
        if level == "3" and not probe.type:
            raise UnlearnError(f'{path} record {number}: field "type" is missing; a level-3 probe names its attack')
        kind = probe.type if level == "3" else None
        out.append(ProbeRow(set_name, level, kind, target, probe.query, probe.answer, probe.subject))
    if not out:
        raise UnlearnError(f"{path}: no records")
    return out


def _mmlu(path: Path) -> list[MmluRow]:
    out = []
    for number, raw in enumerate(_read_json(path), 1):
        row = domains.validate(MmluRow, raw, f"{path} record {number}")
        for where, item in [("", row), *((f" example {k}", e) for k, e in enumerate(row.examples, 1))]:
            if len(item.choices) != 4 or item.answer > 3:
                raise UnlearnError(
                    f"{path} record {number}{where}: needs 4 choices and an answer from 0 to 3 (got "
                    f"{len(item.choices)} choices, answer {item.answer}); RWKU's eval_mmlu.py letters them A-D"
                )
        out.append(row)
    if not out:
        raise UnlearnError(f"{path}: no records")
    return out


def _trivia(path: Path) -> list[TriviaRow]:
    out = [domains.validate(TriviaRow, row, f"{path} record {n}") for n, row in enumerate(_read_json(path), 1)]
    for number, row in enumerate(out, 1):
        if not row.answers:
            raise UnlearnError(f'{path} record {number}: field "answers" is empty; give the accepted answers')
    if not out:
        raise UnlearnError(f"{path}: no records")
    return out


def _rows(path: Path, model: type[domains.Record]) -> list[Any]:
    out = [domains.validate(model, row, f"{path} record {n}") for n, row in enumerate(_read_json(path), 1)]
    if not out:
        raise UnlearnError(f"{path}: no records")
    return out


def _bbh(path: Path) -> list[BbhRow]:
    out = _rows(path, BbhRow)
    for number, row in enumerate(out, 1):
        if isinstance(row.answer, list) and not row.answer:
            raise UnlearnError(f'{path} record {number}: field "answer" is an empty list; give the answer')
    return out


def _truthful(path: Path) -> list[TruthfulRow]:
    """TruthfulQA rows. eval_truthfulqa.py needs, for MC1, a true choice and a false one (it
    compares the first true choice with the best false one) and, for MC2, a true choice."""
    out = _rows(path, TruthfulRow)
    for number, row in enumerate(out, 1):
        for name, targets in (("mc1_targets", row.mc1_targets), ("mc2_targets", row.mc2_targets)):
            where = f"{path} record {number}: {name}"
            if len(targets.choices) != len(targets.labels):
                raise UnlearnError(
                    f"{where} has {len(targets.choices)} choices and {len(targets.labels)} labels; give one 0/1 "
                    "label per choice"
                )
            if 1 not in targets.labels or (name == "mc1_targets" and 0 not in targets.labels):
                need = "a true (1) and a false (0) choice" if name == "mc1_targets" else "a true (1) choice"
                raise UnlearnError(f"{where} needs {need}; eval_truthfulqa.py scores the true against the false")
    return out


def _texts(path: Path) -> list[str]:
    texts = [domains.validate(MiaText, row, f"{path} record {n}").text for n, row in enumerate(_read_json(path), 1)]
    if not texts:
        raise UnlearnError(f"{path}: no records")
    return texts


def _target_folders(data_dir: Path, flag: str) -> tuple[Path, list[tuple[int | None, str, Path]]]:
    if not data_dir.is_dir():
        raise UnlearnError(f"{flag} {data_dir}: no such folder; pass RWKU's Target folder ({LAYOUT})")
    if (data_dir / "forget_level1.json").is_file():
        match = _FOLDER.match(data_dir.name)
        name = match.group(2).replace("_", " ") if match else data_dir.name
        return data_dir, [(int(match.group(1)) if match else None, name, data_dir)]
    root = data_dir / "Target" if (data_dir / "Target").is_dir() else data_dir
    found = []
    for sub in root.iterdir():
        match = _FOLDER.match(sub.name)
        if sub.is_dir() and match:
            found.append((int(match.group(1)), match.group(2).replace("_", " "), sub))
    if not found:
        raise UnlearnError(f"{flag} {data_dir}: no target folders (<n>_<Name>); {LAYOUT}")
    return root, sorted(found, key=lambda f: (f[0], f[1]))


def select(names: list[tuple[int | None, str, Path]], targets: str | None) -> list[tuple[int | None, str, Path]]:
    """The targets ``--setting targets=`` names: all (unset or "all"), the first N (a count, as
    RWKU's batch settings 1-10, 1-20...), or a comma-separated list of names, numbers or folders."""
    if targets is None or targets.strip().lower() in ("", "all"):
        return names
    spec = targets.strip()
    if spec.isdigit():
        count = int(spec)
        if not 1 <= count <= len(names):
            raise UnlearnError(
                f"--setting targets={spec}: the data has {len(names)} target(s); give a count from 1 to {len(names)}, "
                "names, or all"
            )
        return names[:count]
    chosen = []
    for part in (p.strip() for p in spec.split(",")):
        hit = [n for n in names if part in (n[1], n[2].name, str(n[0]))]
        if not hit:
            known = ", ".join(n[1] for n in names)
            raise UnlearnError(f"--setting targets: no target {part!r} in the data; its targets are {known}")
        if hit[0] not in chosen:
            chosen.append(hit[0])
    return chosen


def load_data(data_dir: Path, flag: str, targets: str | None = None) -> RwkuData:
    root, folders = _target_folders(data_dir, flag)
    selected = select(folders, targets)
    loaded = []
    for number, name, folder in selected:
        missing = [f"{stem}.json" for stem in PROBE_FILES + MIA_FILES if not (folder / f"{stem}.json").is_file()]
        if missing:
            raise UnlearnError(f"{flag} {folder}: no {', '.join(missing)}; {LAYOUT}")
        probes = {stem: _probes(folder / f"{stem}.json", stem.split("_")[0], stem[-1], name) for stem in PROBE_FILES}
        mia = {split: _texts(folder / f"{split}_mia.json") for split in ("forget", "retain")}
        readers: dict[str, Any] = {
            "general": _mmlu,
            "reasoning": _bbh,
            "truthfulness": _truthful,
            "factuality": _trivia,
            "fluency": lambda path: _rows(path, FluencyRow),
        }
        utility = {
            name: readers[name](folder / f"{stem}.json")
            for name, stem in UTILITY_FILES.items()
            if (folder / f"{stem}.json").is_file()
        }
        loaded.append(Target(number, name, folder, probes, mia, utility))
    for stem_name, stem in UTILITY_FILES.items():
        having = [t.folder.name for t in loaded if stem_name in (t.utility or {})]
        if having and len(having) < len(loaded):
            lacking = ", ".join(t.folder.name for t in loaded if stem_name not in (t.utility or {}))
            raise UnlearnError(
                f"{flag} {root}: {stem}.json is in {', '.join(having)} but not in {lacking}; give it to every "
                f"selected target (RWKU's utility_{stem_name}) or to none"
            )
    return RwkuData(root, loaded, [n for _, n, _ in folders])
