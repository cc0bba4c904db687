"""Bad WMDP / multiple-choice input is one clear line naming the flag or file, before any model loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_bad_input import usage_error

DATA = Path(__file__).resolve().parents[3] / "suites" / "wmdp-mini" / "data"
GOOD = {"question": "Which host does Kalo infect?", "choices": ["bats", "pigs", "ducks", "goats"], "answer": 2}


@pytest.fixture(scope="module")
def model() -> Path:
    # The data is checked before the model is even inspected; any model folder serves.
    from fixtures.worlds import committed

    found = committed("wmdp")
    assert found is not None
    return found["target"]


def data_with(tmp_path: Path, rows: list, name: str = "wmdp-bio.jsonl") -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    text = "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    (folder / name).write_text(text)
    return folder


def run(pytester: pytest.Pytester, model: Path, *args: str) -> str:
    return usage_error(pytester, "--suite=wmdp", f"--model={model}", *args)


def test_wmdp_needs_data(pytester, model):
    assert run(pytester, model) == (
        "ERROR: --suite wmdp needs --data DIR: the folder with wmdp-bio.jsonl, wmdp-cyber.jsonl, wmdp-chem.jsonl "
        "(or .parquet)"
    )


def test_missing_data_folder(pytester, model, tmp_path):
    missing = tmp_path / "nowhere"
    assert run(pytester, model, f"--data={missing}") == (
        f"ERROR: --data {missing}: no such folder; pass the folder with wmdp-bio.jsonl, wmdp-cyber.jsonl, "
        "wmdp-chem.jsonl (or .parquet)"
    )


def test_no_subset_file_at_all(pytester, model, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "bio.jsonl").write_text(json.dumps(GOOD) + "\n")  # not a name any subset declares
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: --data {folder}: no question file of any subset of suite wmdp (expected wmdp-bio.jsonl, "
        "wmdp-cyber.jsonl, wmdp-chem.jsonl, .json, .parquet or a folder of that name)"
    )


def test_a_row_without_choices(pytester, model, tmp_path):
    row = {k: v for k, v in GOOD.items() if k != "choices"}
    folder = data_with(tmp_path, [GOOD, row])
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: {folder / 'wmdp-bio.jsonl'}:2: a row needs question, choices and answer; 'choices' is missing"
    )


def test_answer_out_of_range(pytester, model, tmp_path):
    folder = data_with(tmp_path, [{**GOOD, "answer": 4}])
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: {folder / 'wmdp-bio.jsonl'}:1: 'answer' must be an index 0-3 into 'choices', found 4"
    )


def test_answer_as_a_letter_is_refused(pytester, model, tmp_path):
    folder = data_with(tmp_path, [{**GOOD, "answer": "C"}])
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: {folder / 'wmdp-bio.jsonl'}:1: 'answer' must be an index 0-3 into 'choices', found 'C'"
    )


def test_wrong_number_of_choices(pytester, model, tmp_path):
    folder = data_with(tmp_path, [GOOD, {**GOOD, "question": "Q?", "choices": ["a", "b", "c"]}])
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: {folder / 'wmdp-bio.jsonl'}:2: 'choices' has 3 entries, the suite's template takes 4; "
        "fix the row or the manifest's labels and template"
    )


def test_duplicate_question_with_conflicting_answers(pytester, model, tmp_path):
    folder = data_with(tmp_path, [GOOD, {**GOOD, "question": "Other?"}, {**GOOD, "answer": 1}])
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: {folder / 'wmdp-bio.jsonl'}: question ('Which host does Kalo infect?', "
        "('bats', 'pigs', 'ducks', 'goats')) appears on lines 1 and 3 with different content; keep one of them "
        "(a later row must not silently decide a verdict)"
    )


def test_identical_duplicates_are_one_warning_and_an_error_under_strict(pytester, model, tmp_path):
    folder = data_with(tmp_path, [GOOD, GOOD])
    assert run(pytester, model, f"--data={folder}", "--unlearn-strict") == (
        f"ERROR: {folder / 'wmdp-bio.jsonl'}: 1 identical duplicate row(s) kept once "
        "(('Which host does Kalo infect?', ('bats', 'pigs', 'ducks', 'goats')) on lines 1 and 2); "
        "multi-process runs pad their output this way (--strict turns warnings into errors)"
    )


def test_a_line_that_is_not_json(pytester, model, tmp_path):
    folder = data_with(tmp_path, [GOOD, "{'question': 'single quotes'}"])
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: {folder / 'wmdp-bio.jsonl'}:2: not a JSON object (Expecting property name enclosed in double "
        "quotes); one question per line"
    )


def test_an_empty_subset_file(pytester, model, tmp_path):
    folder = data_with(tmp_path, [])
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: {folder / 'wmdp-bio.jsonl'}: no questions; pass a file with one question per line"
    )


def test_two_files_for_one_subset(pytester, model, tmp_path):
    folder = data_with(tmp_path, [GOOD])
    (folder / "wmdp-bio.json").write_text(json.dumps([GOOD]))
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: --data {folder}: subset bio has 2 files (wmdp-bio.jsonl, wmdp-bio.json); keep one of them"
    )


def test_missing_mmlu_folder(pytester, model, tmp_path):
    folder = data_with(tmp_path, [GOOD])
    missing = tmp_path / "no-mmlu"
    assert run(pytester, model, f"--data={folder}", f"--mmlu={missing}") == (
        f"ERROR: --mmlu {missing}: no such folder; pass a folder with dev/ and test/ CSVs"
    )


def test_missing_model(pytester, tmp_path):
    folder = data_with(tmp_path, [GOOD])
    missing = tmp_path / "no-model"
    assert usage_error(pytester, "--suite=wmdp", f"--data={folder}", f"--model={missing}") == (
        f"ERROR: --model {missing}: no such file or folder; pass a local model folder"
    )
    assert usage_error(pytester, "--suite=wmdp", f"--data={folder}") == (
        "ERROR: --suite wmdp needs --model PATH (or --predictions FILE: the mcq_predictions.jsonl of an earlier run)"
    )


def test_missing_original_model(pytester, model, tmp_path):
    folder = data_with(tmp_path, [GOOD])
    missing = tmp_path / "no-original"
    assert run(pytester, model, f"--data={folder}", f"--original-model={missing}") == (
        f"ERROR: --original-model {missing}: no such file or folder; pass a local model folder"
    )


def test_unknown_setting(pytester, model, tmp_path):
    folder = data_with(tmp_path, [GOOD])
    assert run(pytester, model, f"--data={folder}", "--setting", "mmlu_shot=5") == (
        "ERROR: --setting mmlu_shot: suite wmdp has no such setting. Did you mean: mmlu_shots? Known: add_bos_token, "
        "bootstrap_samples, labels, max_batch_tokens, mmlu_shots, seed, strip_question, subsets, target_delimiter, "
        "template"
    )


def manifest(tmp_path: Path, settings: str, checks: str | None = None) -> Path:
    path = tmp_path / "custom.toml"
    checks = (
        checks
        or '[[checks]]\nid = "toxins"\nmetric = "mcq.accuracy"\nparams = { subset = "toxins" }\nop = "<="\nthreshold = 0.3\n'
    )
    path.write_text(f'[suite]\nname = "custom"\nversion = "1"\nbackend = "mcq"\n\n[settings]\n{settings}\n\n{checks}')
    return path


def test_manifest_without_subsets(pytester, model, tmp_path):
    path = manifest(tmp_path, "seed = 0")
    line = usage_error(pytester, f"--suite={path}", f"--model={model}", f"--data={tmp_path}")
    assert line == (
        f"ERROR: suite manifest {path}: [settings.subsets] must declare at least one subset "
        '(e.g. [settings.subsets.bio] file = "wmdp-bio")'
    )


def test_manifest_template_with_an_unknown_field(pytester, model, tmp_path):
    path = manifest(
        tmp_path, 'template = "{question}\\n{options}\\nAnswer:"\n[settings.subsets.toxins]\nfile = "toxins"'
    )
    line = usage_error(pytester, f"--suite={path}", f"--model={model}", f"--data={tmp_path}")
    assert line == (
        f"ERROR: suite manifest {path}: template field {{options}} is unknown; use {{question}} and {{choices[0]}}, "
        "{choices[1]}, ..."
    )


def test_manifest_template_beyond_its_labels(pytester, model, tmp_path):
    path = manifest(
        tmp_path,
        'template = "{question}\\nA. {choices[0]}\\nB. {choices[1]}\\nC. {choices[2]}\\nAnswer:"\n'
        'labels = ["A", "B"]\n[settings.subsets.toxins]\nfile = "toxins"',
    )
    line = usage_error(pytester, f"--suite={path}", f"--model={model}", f"--data={tmp_path}")
    assert line == (
        f"ERROR: suite manifest {path}: template '{{question}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. "
        "{choices[2]}\\nAnswer:' does not fit 2 choices (labels A, B): tuple index out of range"
    )


def test_check_of_an_undeclared_subset(pytester, model, tmp_path):
    (tmp_path / "toxins.jsonl").write_text(json.dumps(GOOD) + "\n")
    path = manifest(
        tmp_path,
        '[settings.subsets.toxins]\nfile = "toxins"',
        '[[checks]]\nid = "venoms"\nmetric = "mcq.accuracy"\nparams = { subset = "venoms" }\nop = "<="\nthreshold = 0.3\n',
    )
    line = usage_error(pytester, f"--suite={path}", f"--model={model}", f"--data={tmp_path}")
    assert line == (
        f"ERROR: suite manifest {path}: check 'venoms': subset 'venoms' is not declared in [settings.subsets] "
        "(declared: toxins)"
    )


def test_subset_folder_with_several_files(pytester, model, tmp_path):
    folder = tmp_path / "data"
    (folder / "wmdp-bio").mkdir(parents=True)
    for name in ("part-1.jsonl", "part-2.jsonl"):
        (folder / "wmdp-bio" / name).write_text(json.dumps(GOOD) + "\n")
    assert run(pytester, model, f"--data={folder}") == (
        f"ERROR: --data {folder}: the folder wmdp-bio/ holds 2 question files (part-1.jsonl, part-2.jsonl); "
        "keep one (the test split) per subset"
    )


def test_the_bundled_data_is_read_from_its_folder(pytester, model, tmp_path):
    # A copy of the bundled data with one bad row: the error names the copied file and line.
    folder = tmp_path / "copy"
    shutil.copytree(DATA, folder)
    rows = (folder / "wmdp-cyber.jsonl").read_text().splitlines()
    rows[5] = json.dumps({**json.loads(rows[5]), "answer": -1})
    (folder / "wmdp-cyber.jsonl").write_text("\n".join(rows) + "\n")
    line = usage_error(pytester, "--suite=wmdp-mini", f"--model={model}", f"--data={folder}")
    assert line == f"ERROR: {folder / 'wmdp-cyber.jsonl'}:6: 'answer' must be an index 0-3 into 'choices', found -1"


def predictions(tmp_path: Path, rows: list) -> Path:
    path = tmp_path / "scored.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def scored(subset: str, index: int, question: str = "") -> dict:
    row = {"subset": subset, "index": index, "loglikelihoods": {"A": -1.0, "B": -2.0, "C": -3.0, "D": -4.0}}
    return {**row, "question": question} if question else row


def test_predictions_of_other_data(pytester, tmp_path):
    folder = data_with(tmp_path, [GOOD])
    path = predictions(tmp_path, [scored("venoms", 0)])
    assert usage_error(pytester, "--suite=wmdp", f"--data={folder}", f"--predictions={path}") == (
        f"ERROR: --predictions {path}: none of its 1 ids is in the data (e.g. 'venoms:0'); it belongs to another "
        "split or data version: pass the predictions of this --data"
    )


def test_predictions_missing_questions(pytester, tmp_path):
    folder = data_with(tmp_path, [GOOD, {**GOOD, "question": "Second?"}])
    path = predictions(tmp_path, [scored("bio", 0)])
    assert usage_error(pytester, "--suite=wmdp", f"--data={folder}", f"--predictions={path}") == (
        f"ERROR: --predictions {path}: no prediction for 1 of the 2 questions ('bio:1'); pass the predictions of "
        "this data, or --model PATH"
    )


def test_predictions_of_another_question(pytester, tmp_path):
    folder = data_with(tmp_path, [GOOD])
    path = predictions(tmp_path, [scored("bio", 0, "Another question?")])
    assert usage_error(pytester, "--suite=wmdp", f"--data={folder}", f"--predictions={path}") == (
        f"ERROR: --predictions {path}:1: bio:0 is 'Another question?' there but 'Which host does Kalo infect?' in "
        "the data; pass the predictions of this data"
    )


def test_predictions_with_conflicting_repeats(pytester, tmp_path):
    folder = data_with(tmp_path, [GOOD])
    other = scored("bio", 0)
    other["loglikelihoods"] = {**other["loglikelihoods"], "D": 0.0}
    path = predictions(tmp_path, [scored("bio", 0), other])
    assert usage_error(pytester, "--suite=wmdp", f"--data={folder}", f"--predictions={path}") == (
        f"ERROR: --predictions {path}: id 'bio:0' appears on lines 1 and 2 with different content; keep one of "
        "them (a later row must not silently decide a verdict)"
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"subset": "bio", "index": 0}, "a row needs subset, index and loglikelihoods (the mcq_predictions.jsonl / "
         "mmlu_predictions.jsonl a run writes)"),
        ({**scored("bio", 0), "loglikelihoods": {"A": -1.0, "B": -2.0}}, "loglikelihoods must map each label "
         "(A, B, C, D) to a number, got {'A': -1.0, 'B': -2.0}"),
        ({**scored("bio", 0), "loglikelihoods": {"A": "x", "B": -2.0, "C": 0, "D": 1}}, "loglikelihoods must be "
         "numbers (no NaN), got {'A': 'x', 'B': -2.0, 'C': 0, 'D': 1}"),
    ],
)  # fmt: skip
def test_malformed_prediction_rows(pytester, tmp_path, row, message):
    folder = data_with(tmp_path, [GOOD])
    path = predictions(tmp_path, [row])
    line = usage_error(pytester, "--suite=wmdp", f"--data={folder}", f"--predictions={path}")
    assert line == f"ERROR: --predictions {path}:1: {message}"


def test_predictions_folder_without_our_files(pytester, tmp_path):
    folder = data_with(tmp_path, [GOOD])
    empty = tmp_path / "artifacts"
    empty.mkdir()
    assert usage_error(pytester, "--suite=wmdp", f"--data={folder}", f"--predictions={empty}") == (
        f"ERROR: --predictions {empty}: neither mcq_predictions.jsonl nor mmlu_predictions.jsonl in the folder; "
        "pass an artifacts folder of an earlier run (or one of its files)"
    )
