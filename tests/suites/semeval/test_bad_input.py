"""SemEval's own data and predictions: each bad input is one clear line naming the file (the
generic cases, options and model files, are in tests/test_bad_input.py)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import semeval_rows
from tests.test_bad_input import data_folder, usage_error


def test_data_folder_missing(pytester, perfect_unlearning_predictions):
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "--data=nowhere"
    )
    assert line == "ERROR: --data nowhere: no such folder; pass the folder with forget/retain files"


def test_data_folder_without_forget_file(pytester, perfect_unlearning_predictions, tmp_path):
    (tmp_path / "data").mkdir()
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", f"--data={tmp_path / 'data'}"
    )
    assert line.endswith("no forget file; expected forget.jsonl or forget.parquet")


def test_empty_forget_set(pytester, perfect_unlearning_predictions, tmp_path):
    data = data_folder(tmp_path, forget=[])
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", f"--data={data}"
    )
    assert line.endswith("forget.jsonl: the forget set is empty; it needs SemEval prompt rows")


def test_rows_with_wrong_columns(pytester, perfect_unlearning_predictions, tmp_path):
    data = data_folder(tmp_path, forget=[{"id": "aqa0", "question": "q", "answer": "a", "task": "Task1"}])
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", f"--data={data}"
    )
    assert line.endswith(
        "forget.jsonl:1: the row lacks input, output; SemEval rows need the fields id, input, output, task"
    )


def test_id_whose_kind_cannot_be_told(pytester, perfect_unlearning_predictions, tmp_path):
    data = data_folder(tmp_path, forget=[{"id": "doc-7", "input": "q", "output": "a", "task": "Task1"}])
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", f"--data={data}"
    )
    assert line.endswith(
        "cannot tell the prompt kind of id 'doc-7'; SemEval ids end in 'sc<digit>' (sentence completion) or 'qa<digit>' (question answering)"
    )


def test_invalid_json_line(pytester, perfect_unlearning_predictions, tmp_path):
    data = data_folder(tmp_path)
    (data / "retain.jsonl").write_text('{"id": "aqa0"\n')
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", f"--data={data}"
    )
    assert "retain.jsonl:1: invalid JSON line" in line


def test_mia_member_set_empty(pytester, perfect_unlearning_predictions, tmp_path):
    mia = tmp_path / "mia"
    mia.mkdir()
    (mia / "member.jsonl").write_text("")
    (mia / "nonmember.jsonl").write_text(json.dumps({"id": "n1", "document": "text"}) + "\n")
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", f"--mia-data={mia}"
    )
    assert line.endswith("member.jsonl: no documents; the membership-inference AUC needs both members and non-members")


def test_mmlu_folder_with_a_malformed_row(pytester, perfect_unlearning_predictions, tmp_path):
    mmlu = tmp_path / "mmlu"
    (mmlu / "dev").mkdir(parents=True)
    (mmlu / "test").mkdir()
    (mmlu / "dev" / "x_dev.csv").write_text("q,a,b,c,d,A\n")
    (mmlu / "test" / "x_test.csv").write_text("q,a,b,c,d,A\nq2,a,b,c\n")
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", f"--mmlu={mmlu}"
    )
    assert line.endswith(
        "x_test.csv:2: an MMLU row needs 6 columns (question, A, B, C, D, answer), found 4; fix the row or point --mmlu at a valid MMLU folder"
    )


def test_predictions_missing_prompts_fail_the_text_checks_clearly(pytester, tmp_path):
    predictions = tmp_path / "partial.jsonl"
    predictions.write_text(json.dumps({"id": semeval_rows("forget")[0]["id"], "output": "x"}) + "\n")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", "semeval", f"--predictions={predictions}", "-k", "task-aggregate"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            f"task-aggregate: --predictions {predictions}: no output for 107 prompt(s), e.g. *; generate every forget and retain prompt"
        ]
    )


def test_mia_nonmember_set_empty(pytester, perfect_unlearning_predictions, tmp_path):
    """A single class: the AUC does not exist, which is said before any model loads."""
    mia = tmp_path / "mia"
    mia.mkdir()
    (mia / "member.jsonl").write_text(json.dumps({"id": "m1", "document": "text"}) + "\n")
    (mia / "nonmember.jsonl").write_text("\n")
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", f"--mia-data={mia}"
    )
    assert line == (
        f"ERROR: {mia / 'nonmember.jsonl'}: no documents; the membership-inference AUC needs both members and non-members"
    )
