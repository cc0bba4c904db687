"""The SemEval miniature world: committed data is reproducible and in the official formats.

Fast (no torch, no transformers): the data generator is pure Python, and the tokenizer check
needs only the ``tokenizers`` library.
"""

from __future__ import annotations

import collections
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import semeval_world
from fixtures.semeval_world import DATA_DIR, DOCS_PER_SPLIT, MMLU_SUBJECTS, TASKS
from pytest_unlearn.mmlu import CHOICES, build_prompt, load_mmlu

ID = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})(sc1|qa\d+)$")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def world() -> semeval_world.World:
    return semeval_world.generate_world()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return read_jsonl(DATA_DIR / "forget.jsonl") + read_jsonl(DATA_DIR / "retain.jsonl")


def docs_of(rows: list[dict]) -> dict[str, dict[str, dict]]:
    """Rows grouped by document id: {doc_id: {"sc1": row, "qa0": row, ...}}."""
    grouped: dict[str, dict[str, dict]] = collections.defaultdict(dict)
    for row in rows:
        match = ID.match(row["id"])
        assert match, row["id"]
        grouped[match.group(1)][match.group(2)] = row
    return grouped


def test_committed_data_is_byte_identical_to_a_fresh_generation():
    assert semeval_world.diff_data(DATA_DIR) == []


def test_write_data_is_deterministic(tmp_path: Path, world: semeval_world.World):
    semeval_world.write_data(tmp_path / "a")
    semeval_world.write_data(tmp_path / "b")
    written = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert written == sorted(world.files)
    for rel in written:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_check_data_cli_reports_a_stale_file(tmp_path: Path):
    semeval_world.write_data(tmp_path)
    command = [sys.executable, "-m", "fixtures.build", "semeval", "--check-data", "--data-dir", str(tmp_path)]
    root = Path(semeval_world.__file__).resolve().parent.parent
    assert subprocess.run(command, cwd=root, capture_output=True).returncode == 0
    (tmp_path / "retain.jsonl").write_text("{}\n")
    stale = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert stale.returncode == 1
    assert "retain.jsonl: differs" in stale.stderr and "--write-data" in stale.stderr


def test_rows_have_the_official_fields_and_unique_parseable_ids(rows: list[dict]):
    assert all(list(row) == ["id", "input", "output", "task", "split"] for row in rows)
    assert len({row["id"] for row in rows}) == len(rows) == 108
    assert {row["task"] for row in rows} == set(TASKS)
    docs = docs_of(rows)
    assert all(sorted(doc) == ["qa0", "qa1", "sc1"] for doc in docs.values())
    for split in ("forget", "retain"):
        per_task = collections.Counter(d["sc1"]["task"] for d in docs.values() if d["sc1"]["split"] == split)
        assert per_task == {task: DOCS_PER_SPLIT for task in TASKS}


def test_sentence_completion_rows_split_a_short_document_at_a_word_boundary(rows: list[dict]):
    for row in rows:
        if not row["id"].endswith("sc1"):
            continue
        document = row["input"] + row["output"]
        assert row["output"].startswith(" ") and not row["output"].startswith("  ")
        assert not row["input"].endswith(" ") and "  " not in document
        assert 40 <= len(document.split()) <= 60
        assert 0.3 < len(row["input"]) / len(document) < 0.7


def test_answers_are_short_unique_and_never_leak_into_other_documents(rows: list[dict], world):
    qa = [row for row in rows if "qa" in row["id"]]
    answers = [row["output"] for row in qa]
    assert all(a.startswith(" ") and a.strip() and len(a.split()) <= 5 for a in answers)
    assert len({a.strip().lower() for a in answers}) == len(answers)
    docs = docs_of(rows)
    for doc_id, doc in docs.items():
        text = doc["sc1"]["input"] + doc["sc1"]["output"]
        others = [d["sc1"]["input"] + d["sc1"]["output"] for k, d in docs.items() if k != doc_id]
        others += [d["document"] for d in world.nonmembers] + world.mmlu_training_texts()
        for key in ("qa0", "qa1"):
            answer = doc[key]["output"].strip()
            assert answer in text, (doc_id, answer)
            # An answer found elsewhere could be produced by a model that never saw the doc.
            assert not any(answer in other for other in others), (doc_id, answer)


def test_task2_holds_fake_pii_in_reserved_ranges(rows: list[dict]):
    text = " ".join(r["input"] + r["output"] for r in rows if r["task"] == "Task2" and r["id"].endswith("sc1"))
    ssns = re.findall(r"\b\d{3}-\d{2}-\d{4}\b", text)
    assert len(ssns) == 2 * DOCS_PER_SPLIT and all(s.startswith("9") for s in ssns)
    assert len(re.findall(r"\b555-\d{3}-\d{4}\b", text)) == 2 * DOCS_PER_SPLIT


def test_mia_members_are_the_forget_documents_and_nonmembers_are_unseen(rows: list[dict]):
    members = read_jsonl(DATA_DIR / "mia" / "member.jsonl")
    nonmembers = read_jsonl(DATA_DIR / "mia" / "nonmember.jsonl")
    assert all(list(r) == ["id", "document"] for r in members + nonmembers)
    forget_docs = {r["input"] + r["output"] for r in rows if r["split"] == "forget" and r["id"].endswith("sc1")}
    trained = {r["input"] + r["output"] for r in rows if r["id"].endswith("sc1")}
    assert {r["document"] for r in members} == forget_docs and len(members) == 18
    assert len(nonmembers) == 18 and not {r["document"] for r in nonmembers} & trained
    assert len({r["id"] for r in members + nonmembers}) == 36


def test_mmlu_is_in_the_original_csv_layout_with_balanced_answers():
    root = DATA_DIR / "mmlu"
    for subject in MMLU_SUBJECTS:
        for split, n in (("dev", 5), ("test", 8)):
            with (root / split / f"{subject}_{split}.csv").open(newline="", encoding="utf-8") as handle:
                table = list(csv.reader(handle))
            assert len(table) == n and all(len(r) == 6 and r[5] in CHOICES for r in table)
            assert not any(r[0] == "question" for r in table)  # no header row
    data = load_mmlu(root)
    assert data.subjects == sorted(MMLU_SUBJECTS)
    for subject in MMLU_SUBJECTS:
        assert collections.Counter(q.answer for q in data.test[subject]) == {c: 2 for c in CHOICES}
        assert len(set(q.answer for q in data.dev[subject])) == 4
        assert all(len(set(q.options)) == 4 for q in data.test[subject] + data.dev[subject])


def test_tokenizer_keeps_the_input_output_boundary_and_single_token_letters(world, rows: list[dict]):
    pytest.importorskip("tokenizers")
    tokenizer = semeval_world.train_bpe(world)

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False).ids

    for letter in CHOICES:
        assert len(encode(" " + letter)) == 1
    for row in rows:
        # The model is trained on input + output and generates from input alone: the tokens of
        # the whole must be those of the parts, or greedy decoding starts from a state never seen.
        assert encode(row["input"]) + encode(row["output"]) == encode(row["input"] + row["output"]), row["id"]
        assert len(encode(row["output"])) < 64, row["id"]  # fits max_new_tokens=64 with the eos
    data = load_mmlu(DATA_DIR / "mmlu")
    for subject in MMLU_SUBJECTS:
        for q in data.test[subject]:
            prompt = build_prompt(data.dev[subject], subject, q, shots=5)
            assert encode(prompt) + encode(" " + q.answer) == encode(prompt + " " + q.answer)
    assert tokenizer.token_to_id(semeval_world.EOS_TOKEN) is not None
    assert tokenizer.post_processor is None
