"""MUSE's data files, in the layout muse_bench's ``load_data.py`` writes per corpus (``news``,
``books``) from the hub's muse-bench/MUSE-News and MUSE-Books:

- ``verbmem/forget.json``: ``[{"prompt": ..., "gt": ...}]`` (the reference continuation);
- ``knowmem/{forget,retain}_qa.json`` and ``{forget,retain}_qa_icl.json``:
  ``[{"question": ..., "answer": ...}]`` (the questions, and the in-context shots);
- ``privleak/{forget,holdout}.json``: ``["text", ...]`` (rows ``{"text": ...}`` are read too);
  ``privleak/retain.json`` and ``raw/`` (the training corpora) are not needed to score.

``--data`` names the ``data`` folder (holding ``news/``, ``books/``) or one corpus folder.
Pure Python, so bad data stops a run before any model loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.integrity import Located, Warn, deduplicate, read_text, require_disjoint

FILES = {
    "verbmem": "verbmem/forget.json",
    "forget_qa": "knowmem/forget_qa.json",
    "forget_qa_icl": "knowmem/forget_qa_icl.json",
    "retain_qa": "knowmem/retain_qa.json",
    "retain_qa_icl": "knowmem/retain_qa_icl.json",
    "privleak_forget": "privleak/forget.json",
    "privleak_holdout": "privleak/holdout.json",
}
LAYOUT = (
    "MUSE's layout has verbmem/forget.json, knowmem/{forget,retain}_qa.json and {forget,retain}_qa_icl.json, "
    "privleak/{forget,holdout}.json (muse_bench's load_data.py writes it)"
)


@dataclass(frozen=True)
class Passage:
    """A VerbMem item: the prompt (an excerpt's start) and its true continuation."""

    index: int
    prompt: str
    gt: str


@dataclass(frozen=True)
class QA:
    index: int
    question: str
    answer: str


@dataclass(frozen=True)
class MuseData:
    """What ``unlearn_data`` gives a muse test: every set as the scorer reads it."""

    corpus: str
    folder: Path
    verbmem: list[Passage]
    knowmem: dict[str, list[QA]]  # "forget", "retain": the scored questions
    icl: dict[str, list[QA]]  # "forget", "retain": the in-context shots before them
    privleak: dict[str, list[str]]  # "forget", "holdout"

    @property
    def forget(self) -> list[QA]:
        return self.knowmem["forget"]

    @property
    def retain(self) -> list[QA]:
        return self.knowmem["retain"]


def corpus_folder(data_dir: Path, corpus: str) -> Path:
    """``DIR/<corpus>`` when it is there (muse_bench's ``data`` folder), else ``DIR`` itself."""
    return data_dir / corpus if (data_dir / corpus).is_dir() else data_dir


def read_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnlearnError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); MUSE's files are JSON lists") from None


def _records(path: Path, fields: tuple[str, ...]) -> list[Located[dict[str, str]]]:
    from pytest_unlearn import domains

    model = domains.QAPair if fields == ("question", "answer") else domains.Passage
    rows = read_json(path)
    if not isinstance(rows, list):
        raise UnlearnError(f"{path}: expected a JSON list of objects with {', '.join(fields)}")
    out = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not all(isinstance(row.get(f), str) for f in fields):
            raise UnlearnError(f"{path}: record {number} needs the strings {', '.join(fields)}")
        # An empty answer (or gt) is matched by any output: KnowMem-forget would read 0.
        domains.validate(model, row, f"{path} record {number}")
        out.append(Located(number, {f: row[f] for f in fields}))
    if not out:
        raise UnlearnError(f"{path}: no records")
    return out


def _kept(path: Path, rows: list[Located[Any]], key: Any, content: Any, what: str, warn: Warn) -> list[Any]:
    kept = deduplicate(rows, key=key, content=content, source=path, what=what)
    warn(kept.warning.replace("row(s)", "record(s)").replace("lines", "records") if kept.warning else None)
    return kept.rows


def load_passages(path: Path, warn: Warn) -> list[Passage]:
    rows = _records(path, ("prompt", "gt"))
    kept = _kept(path, rows, lambda r: r["prompt"], lambda r: r["gt"], "prompt", warn)
    return [Passage(i, r["prompt"], r["gt"]) for i, r in enumerate(kept)]


def load_qa(path: Path, warn: Warn) -> list[QA]:
    rows = _records(path, ("question", "answer"))
    kept = _kept(path, rows, lambda r: r["question"], lambda r: r["answer"], "question", warn)
    return [QA(i, r["question"], r["answer"]) for i, r in enumerate(kept)]


def load_texts(path: Path, warn: Warn) -> list[str]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise UnlearnError(f"{path}: expected a JSON list of texts")
    texts = []
    for number, row in enumerate(rows, 1):
        text = row.get("text") if isinstance(row, dict) else row
        if not isinstance(text, str) or not text.strip():
            raise UnlearnError(f'{path}: record {number} is not a non-empty text (a string, or {{"text": ...}})')
        texts.append(Located(number, text))
    if not texts:
        raise UnlearnError(f"{path}: no texts")
    return _kept(path, texts, lambda t: t, lambda t: t, "text", warn)


def load_data(data_dir: Path, corpus: str, flag: str, warn: Warn) -> MuseData:
    if not data_dir.is_dir():
        raise UnlearnError(f"{flag} {data_dir}: no such folder; pass MUSE's data folder (or one corpus folder in it)")
    folder = corpus_folder(data_dir, corpus)
    paths = {name: folder / rel for name, rel in FILES.items()}
    missing = [FILES[name] for name, path in paths.items() if not path.is_file()]
    if missing:
        raise UnlearnError(f"{flag} {folder}: no {', '.join(missing)} (corpus={corpus}); {LAYOUT}")
    data = MuseData(
        corpus=corpus,
        folder=folder,
        verbmem=load_passages(paths["verbmem"], warn),
        knowmem={s: load_qa(paths[f"{s}_qa"], warn) for s in ("forget", "retain")},
        icl={s: load_qa(paths[f"{s}_qa_icl"], warn) for s in ("forget", "retain")},
        privleak={s: load_texts(paths[f"privleak_{s}"], warn) for s in ("forget", "holdout")},
    )
    # A question scored as forgotten and as retained, or a text both member and non-member,
    # would pull one verdict in two directions.
    require_disjoint(
        {q.question: q.index + 1 for q in data.knowmem["forget"]},
        {q.question: q.index + 1 for q in data.knowmem["retain"]},
        first_source=paths["forget_qa"],
        second_source=paths["retain_qa"],
        what="question",
        belongs="a question is about the forget or the retain corpus, not both",
    )
    require_disjoint(
        {t: i + 1 for i, t in enumerate(data.privleak["forget"])},
        {t: i + 1 for i, t in enumerate(data.privleak["holdout"])},
        first_source=paths["privleak_forget"],
        second_source=paths["privleak_holdout"],
        what="text",
        belongs="PrivLeak's holdout texts are ones the model was never trained on",
    )
    return data
