"""Bad input gets one clear line naming the flag or file and what to do — never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# The inner runs load models: their C extensions must be imported by this process first.
import diffusers  # noqa: F401
import pytest
import safetensors.torch  # noqa: F401
import torch
import transformers.models.olmo.modeling_olmo  # noqa: F401

from tests.conftest import SEMEVAL_DATA, semeval_rows
from tests.tiny_models import write_tiny_olmo

torch.set_num_threads(1)


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
    # The list of known suites grows; the suggestion and the way out stay.
    assert line.startswith("ERROR: --suite: Unknown suite 'semevl'. Did you mean: semeval? Known: ")
    assert line.endswith("(or pass the path of a suite manifest .toml)") and "semeval" in line.split("Known: ")[1]


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
        (
            ("--setting=max_new_token=64",),
            "ERROR: --setting max_new_token: suite semeval has no such setting. Did you mean: max_new_tokens? "
            "Known: bootstrap_samples, gradnorm_p, max_batch_tokens, max_new_tokens, mia_attack, mia_k, mmlu_shots, seed, truncate_to_context",
        ),
        (
            ("--judge=clip",),
            "ERROR: --judge: suite semeval has no such setting. Known: bootstrap_samples, gradnorm_p, max_batch_tokens, max_new_tokens, mia_attack, mia_k, mmlu_shots, seed, truncate_to_context",
        ),
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


# --- model files -------------------------------------------------------------------------------
# The cases below load tiny random models (tests/tiny_models.py): a second or two each.


@pytest.fixture(scope="module")
def tiny_olmo_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("olmo") / "model"
    write_tiny_olmo(folder)
    return folder


def copy_model(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def failed_checks(result: pytest.RunResult, card_path: Path) -> dict[str, str]:
    """The error of every check of a run that failed its checks cleanly (no traceback)."""
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert "Traceback" not in output
    card = json.loads(card_path.read_text())
    errors = {c["id"]: c["error"] for c in card["checks"]}
    for check_id, error in errors.items():
        assert error is not None, (check_id, output)
        result.stdout.fnmatch_lines([f"{check_id}: {error}"])  # the failure is that one line
    return errors


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_safetensors_is_refused_before_loading(pytester, tiny_olmo_folder, tmp_path, damage):
    folder = copy_model(tiny_olmo_folder, tmp_path / "model")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else bytes(range(256)) * 20)
    line = usage_error(pytester, "--suite", "semeval", f"--model={folder}")
    reason = (
        f"the header describes {len(data) - 8 - int.from_bytes(data[:8], 'little')} bytes of tensors, the file holds"
        if damage == "truncated"
        else "the header length points past the end of the file"
    )
    assert line.startswith(f"ERROR: --model {weights}: truncated or corrupt safetensors file ({reason}")
    assert line.endswith("re-download it or re-save the model with save_pretrained")


def test_nan_weights_fail_every_model_check_with_one_line(pytester, tiny_olmo_folder, tmp_path):
    """Decision: refused at load. A NaN model emits garbage, and garbage regurgitates nothing of
    the forget set, so it would *pass* forget checks; it must never reach the metrics. Loading is
    lazy (a --predictions run needs no model), so the refusal fails each check that needs the
    model with the same line rather than stopping the run at configuration."""
    from safetensors.torch import load_file, save_file

    folder = copy_model(tiny_olmo_folder, tmp_path / "model")
    state = load_file(folder / "model.safetensors")
    state["model.layers.0.mlp.up_proj.weight"][0, 0] = float("nan")
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", "semeval", f"--model={folder}", "-k", "task1-knowledge-forget or mia-score"
    )
    errors = failed_checks(result, pytester.path / "unlearn-scorecard.json")
    assert set(errors) == {"task1-knowledge-forget", "mia-score"}
    assert set(errors.values()) == {
        f"--model {folder}: the weights hold NaN or infinite values (1 of 9 tensors, first "
        "'model.layers.0.mlp.up_proj.weight', loaded as float32); the checkpoint is broken: check the "
        "training run or the conversion"
    }


def test_tokenizer_without_pad_token_is_padded_with_eos(pytester, tiny_olmo_folder):
    """The loader fixes a missing pad token the way the official scorer does (pad = eos)."""
    config = json.loads((tiny_olmo_folder / "tokenizer_config.json").read_text())
    assert config.get("pad_token") is None
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite",
        "semeval",
        f"--model={tiny_olmo_folder}",
        "--max-new-tokens=2",
        "-k",
        "task1-knowledge-forget",
        "--unlearn-partial",
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()


def test_tokenizer_without_eos_or_pad_token_fails_with_one_line(pytester, tmp_path):
    folder = tmp_path / "model"
    write_tiny_olmo(folder, eos=None)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", "semeval", f"--model={folder}", "-k", "task1-knowledge-forget"
    )
    errors = failed_checks(result, pytester.path / "unlearn-scorecard.json")
    assert errors["task1-knowledge-forget"] == (
        f"--model {folder}: the tokenizer has no eos token, which the scorer uses for padding and stopping; "
        "set eos_token in tokenizer_config.json"
    )


# --- option values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "value", "expected"),
    [
        ("cli", "mmlu=nan", "ERROR: --threshold needs a finite number after '=' in CHECK=VALUE, got 'mmlu=nan'"),
        ("cli", "mmlu=0,5", "ERROR: --threshold needs a number after '=' in CHECK=VALUE, got 'mmlu=0,5'"),
        (
            "env",
            "mmlu=high",
            "ERROR: --threshold needs a number after '=' in CHECK=VALUE, got 'mmlu=high' (from PYTEST_UNLEARN_THRESHOLD)",
        ),
        (
            "ini",
            "mmlu=",
            "ERROR: --threshold needs a number after '=' in CHECK=VALUE, got 'mmlu=' (from ini option unlearn_threshold)",
        ),
    ],
)
def test_threshold_with_a_non_number_names_where_it_came_from(
    pytester, perfect_unlearning_predictions, monkeypatch, source, value, expected
):
    args = ["--suite", "semeval", f"--predictions={perfect_unlearning_predictions}"]
    if source == "cli":
        args.append(f"--threshold={value}")
    elif source == "env":
        monkeypatch.setenv("PYTEST_UNLEARN_THRESHOLD", value)
    else:
        pytester.makeini(f"[pytest]\nunlearn_threshold =\n    {value}\n")
    assert usage_error(pytester, *args) == expected


# --- where results go --------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--artifacts", "--scorecard"])
def test_output_path_under_a_regular_file(pytester, perfect_unlearning_predictions, flag):
    (pytester.path / "plain-file").write_text("")
    target = pytester.path / "plain-file" / ("artifacts" if flag == "--artifacts" else "card.json")
    line = usage_error(
        pytester, "--suite", "semeval", f"--predictions={perfect_unlearning_predictions}", f"{flag}={target}"
    )
    assert line.startswith(f"ERROR: {flag} {target if flag == '--artifacts' else target}: cannot write there (")
    assert line.endswith("pick a writable folder" if flag == "--artifacts" else "pick a writable path")


BREAK_AFTER_COLLECTION = """
import shutil
from pathlib import Path

def pytest_collection_finish(session):
    # The folder was writable when the run started; it is not by the time results are written.
    target = Path({target!r})
    shutil.rmtree(target)
    target.write_text("now a regular file")
"""


def test_artifacts_folder_lost_during_the_run_keeps_the_scores(pytester, perfect_unlearning_predictions):
    artifacts = pytester.path / "artifacts"
    pytester.makeconftest(BREAK_AFTER_COLLECTION.format(target=str(artifacts)))
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite",
        "semeval",
        f"--predictions={perfect_unlearning_predictions}",
        f"--artifacts={artifacts}",
        "-k",
        "task-aggregate",
        "--unlearn-partial",
    )
    output = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK and "Traceback" not in output
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    # One check of 16, on purpose: it passed; the suite is not (tests/test_attack_selection.py).
    assert card["checks"][0]["value"] == 1.0 and card["checks"][0]["passed"] is True
    assert card["status"] == "partial" and card["passed"] is False
    assert "generations" not in card["artifacts"]
    warning = (
        f"--artifacts {artifacts}: cannot write generations.jsonl (File exists); the scores are kept, "
        "the per-prompt records are not: pass a writable folder to keep them"
    )
    assert card["warnings"] == [warning]
    result.stdout.fnmatch_lines([f"warning: {warning}"])


def test_scorecard_folder_lost_during_the_run_writes_it_elsewhere_and_fails(pytester, perfect_unlearning_predictions):
    out = pytester.path / "out"
    out.mkdir()
    pytester.makeconftest(BREAK_AFTER_COLLECTION.format(target=str(out)))
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite",
        "semeval",
        f"--predictions={perfect_unlearning_predictions}",
        f"--scorecard={out / 'card.json'}",
        f"--artifacts={pytester.path / 'artifacts'}",
        "-k",
        "task-aggregate",
        "--unlearn-partial",
    )
    output = result.stdout.str()
    # Every check passed, but the gate's evidence is not where the pipeline will look for it.
    assert result.ret == pytest.ExitCode.TESTS_FAILED and "Traceback" not in output
    result.assert_outcomes(passed=1, deselected=15)
    errors = [line for line in result.stdout.lines if line.startswith("ERROR: --scorecard")]
    assert len(errors) == 1, output
    assert errors[0].startswith(f"ERROR: --scorecard {out / 'card.json'}: cannot write it (File exists); wrote it to ")
    assert errors[0].endswith(" instead: pick a writable --scorecard path")
    fallback = Path(errors[0].split("wrote it to ")[1].split(" instead")[0])
    try:
        card = json.loads(fallback.read_text())
        assert card["checks"][0]["passed"] is True and card["checks"][0]["id"] == "task-aggregate"
        assert card["status"] == "partial"  # one check of 16, on purpose
    finally:
        fallback.unlink()
