"""Bad input gets one clear line naming the flag or file and what to do — never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SEMEVAL_DATA, semeval_rows


def usage_error(pytester: pytest.Pytester, *args: str) -> str:
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(errors) == 1, output
    return errors[0]


def model_folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


def data_folder(tmp_path: Path, forget: list[dict] | None = None, retain: list[dict] | None = None) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for split, rows in (("forget", forget), ("retain", retain)):
        rows = semeval_rows(split) if rows is None else rows
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_unknown_suite_suggests_the_closest(pytester):
    line = usage_error(pytester, "--suite", "semevl", "--model=x")
    assert (
        line
        == "ERROR: --suite: Unknown suite 'semevl'. Did you mean: semeval? Known: genmu, semeval (or pass the path of a suite manifest .toml)"
    )


def test_missing_manifest_file(pytester):
    assert (
        usage_error(pytester, "--suite=nowhere/suite.toml")
        == "ERROR: --suite nowhere/suite.toml: no such manifest file"
    )


def test_missing_model_folder(pytester):
    line = usage_error(pytester, "--suite", "semeval", "--model=missing-model")
    assert line == "ERROR: --model missing-model: no such file or folder; pass a local model folder"


def test_model_folder_without_config(pytester, tmp_path):
    folder = model_folder(tmp_path, {"weights.safetensors": b""})
    line = usage_error(pytester, "--suite", "semeval", f"--model={folder}")
    assert line.endswith("not a model folder (no config.json); pass the folder written by save_pretrained")


def test_pickle_only_model_is_refused_without_allow_pickle(pytester, tmp_path):
    folder = model_folder(tmp_path, {"config.json": b"{}", "pytorch_model.bin": b"not really"})
    line = usage_error(pytester, "--suite", "semeval", f"--model={folder}")
    assert "only pickle weights (pytorch_model.bin)" in line and "--allow-pickle" in line


def test_model_without_any_weights(pytester, tmp_path):
    folder = model_folder(tmp_path, {"config.json": b"{}"})
    assert usage_error(pytester, "--suite", "semeval", f"--model={folder}").endswith(
        "no weight files (*.safetensors) in the folder"
    )


def test_suite_without_model_or_predictions(pytester):
    assert usage_error(pytester, "--suite", "semeval") == (
        "ERROR: --suite semeval needs --model PATH (or --predictions FILE for the text checks)"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--batch-size=0",), "ERROR: --batch-size must be a positive integer, got '0'"),
        (("--max-new-tokens=lots",), "ERROR: --max-new-tokens must be a positive integer, got 'lots'"),
        (("--device=tpu",), "ERROR: --device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
        (("--dtype=int8",), "ERROR: --dtype must be one of auto, float32, bfloat16, float16, got 'int8'"),
        (("--threshold=mmlu",), "ERROR: --threshold must be CHECK=VALUE, e.g. task-aggregate=0.5, got 'mmlu'"),
        (("--threshold=mmlu=high",), "ERROR: --threshold needs a number after '=' in CHECK=VALUE, got 'mmlu=high'"),
    ],
)
def test_invalid_option_values_name_the_flag(pytester, perfect_unlearning_predictions, args, expected):
    assert (
        usage_error(pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", *args)
        == expected
    )


def test_environment_value_errors_name_the_variable(pytester, perfect_unlearning_predictions, monkeypatch):
    monkeypatch.setenv("PYTEST_UNLEARN_BATCH_SIZE", "-3")
    line = usage_error(pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}")
    assert line == "ERROR: --batch-size must be a positive integer, got '-3' (from PYTEST_UNLEARN_BATCH_SIZE)"


def test_threshold_naming_no_check(pytester, perfect_unlearning_predictions):
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", "--threshold=mmlu-gate=0.3"
    )
    assert line == "ERROR: --threshold mmlu-gate=…: suite 'semeval' has no check 'mmlu-gate'. Did you mean: mmlu?"


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
        "forget.jsonl: row 1 lacks input, output; SemEval rows need the fields id, input, output, task"
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


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace('metric = "semeval.mmlu_accuracy"', 'metric = "semeval.mmlu_acc"'),
            "check 'mmlu': Unknown metric 'semeval.mmlu_acc'. Did you mean: semeval.mmlu_accuracy?",
        ),
        (
            lambda t: t.replace('op = ">="\nthreshold = 0.371', 'op = ">"\nthreshold = 0.371'),
            "(check 'mmlu'): op must be one of >=, <=, got '>'",
        ),
        (lambda t: t.replace("threshold = 0.371\n", ""), "(check 'mmlu'): missing required key 'threshold' (a number)"),
        (
            lambda t: t.replace(
                'params = { split = "forget", task = "Task1", kind = "regurgitation" }',
                'params = { split = "forget", tsk = "Task1" }',
            ),
            "check 'task1-regurgitation-forget': bad params for metric 'semeval.subtask'",
        ),
    ],
)
def test_broken_manifests(pytester, perfect_unlearning_predictions, edit, expected):
    manifest = pytester.path / "suite.toml"
    text = (SEMEVAL_DATA.parent / "manifest.toml").read_text().replace('"data/', f'"{SEMEVAL_DATA}/')
    manifest.write_text(edit(text))
    line = usage_error(pytester, f"--suite={manifest}", f"--predictions={perfect_unlearning_predictions}")
    assert expected in line


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
