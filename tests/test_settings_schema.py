"""Each suite declares its settings (type, range, default, help); --setting, the environment,
the ini file and the manifest fill them through one resolver, and a bad value is one line that
names the setting, the value, where it came from and what is allowed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.settings import Setting, resolve_settings
from tests.conftest import REPO

SEE = "(see python -m pytest_unlearn settings semeval)"


def usage_error(pytester: pytest.Pytester, *args: str) -> str:
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("max_new_tokens=abc", "max_new_tokens=abc: max_new_tokens must be an integer >= 1, got 'abc'"),
        ("max_new_tokens=0", "max_new_tokens=0: max_new_tokens must be an integer >= 1, got 0"),
        ("seed=nan", "seed=nan: seed must be an integer >= 0, got nan"),
        ("seed=1.5", "seed=1.5: seed must be an integer >= 0, got 1.5"),
        ("bootstrap_samples=0", "bootstrap_samples=0: bootstrap_samples must be an integer >= 1, got 0"),
        ("bootstrap_samples=-3", "bootstrap_samples=-3: bootstrap_samples must be an integer >= 1, got -3"),
        ("bootstrap_samples=true", "bootstrap_samples=true: bootstrap_samples must be an integer >= 1, got true"),
        ("mmlu_shots=-1", "mmlu_shots=-1: mmlu_shots must be an integer >= 0, got -1"),
        ("mia_k=1.5", "mia_k=1.5: mia_k must be a finite number in (0, 1], got 1.5"),
        (
            "truncate_to_context=maybe",
            "truncate_to_context=maybe: truncate_to_context must be true or false, got 'maybe'",
        ),
    ],
)
def test_a_bad_setting_value_is_one_line_naming_it(pytester, perfect_unlearning_predictions, setting, expected):
    line = usage_error(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", f"--setting={setting}"
    )
    assert line == f"ERROR: --setting {expected} {SEE}"


def test_an_unknown_setting_name_gets_a_did_you_mean(pytester, perfect_unlearning_predictions):
    line = usage_error(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "--setting=bootstrap_sample=50"
    )
    assert line == (
        "ERROR: --setting bootstrap_sample: suite semeval has no such setting. Did you mean: bootstrap_samples? "
        "Known: bootstrap_samples, gradnorm_p, max_batch_tokens, max_new_tokens, mia_attack, mia_k, mmlu_shots, seed, "
        "truncate_to_context"
    )


def test_a_bad_value_from_the_environment_names_the_variable(pytester, perfect_unlearning_predictions, monkeypatch):
    monkeypatch.setenv("PYTEST_UNLEARN_SETTING", "seed=1.5")
    line = usage_error(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}")
    assert line == (
        f"ERROR: --setting seed=1.5 (from PYTEST_UNLEARN_SETTING): seed must be an integer >= 0, got 1.5 {SEE}"
    )


def test_a_bad_value_from_the_ini_file_names_the_ini_option(pytester, perfect_unlearning_predictions):
    pytester.makeini("[pytest]\nunlearn_setting =\n    bootstrap_samples=0\n")
    line = usage_error(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}")
    assert line == (
        "ERROR: --setting bootstrap_samples=0 (from ini option unlearn_setting): bootstrap_samples must be an "
        f"integer >= 1, got 0 {SEE}"
    )


def test_a_bad_value_in_the_manifest_names_the_manifest(pytester, perfect_unlearning_predictions):
    text = (REPO / "suites" / "semeval" / "manifest.toml").read_text(encoding="utf-8")
    manifest = pytester.path / "custom.toml"
    manifest.write_text(
        f'[suite]\nname = "custom"\nextends = "{REPO / "suites" / "semeval" / "manifest.toml"}"\n'
        "[settings]\nmmlu_shots = -1\n"
    )
    assert "mmlu_shots = 5" in text  # the twin's own value is fine: the custom one is not
    line = usage_error(pytester, f"--suite={manifest}", f"--predictions={perfect_unlearning_predictions}")
    assert line == (
        f"ERROR: suite manifest {manifest} [settings] mmlu_shots=-1: mmlu_shots must be an integer >= 0, got -1 "
        "(see python -m pytest_unlearn settings custom)"
    )


def test_a_deprecated_flag_still_works_and_prints_its_new_spelling_once(pytester, perfect_unlearning_predictions):
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite=semeval",
        f"--predictions={perfect_unlearning_predictions}",
        "--max-new-tokens=8",
        "--setting=bootstrap_samples=20",
    )
    notice = "warning: --max-new-tokens is deprecated and goes in the next release: use --setting max_new_tokens=8"
    assert result.stdout.lines.count(notice) == 1, result.stdout.str()
    # The flag still sets what its new spelling sets (the card records the suite's settings).
    card = json.loads((pytester.path / "unlearn-scorecard.json").read_text())
    assert card["settings"]["max_new_tokens"] == 8
    result.stdout.fnmatch_lines(["task-aggregate * 1.0000 * >= 0.5000 * PASS"])


def test_a_deprecated_flag_the_suite_never_read_is_still_ignored_but_judge_is_refused(
    pytester, perfect_unlearning_predictions
):
    # --clip-model was a run-level field that semeval never read: ignored for one release, as before.
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite=semeval",
        f"--predictions={perfect_unlearning_predictions}",
        "--clip-model=clip",
        "--setting=bootstrap_samples=20",
    )
    assert result.ret != pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        ["warning: --clip-model is deprecated and goes in the next release: use --setting clip_model=clip"]
    )
    # --judge always was a setting: a suite without one refuses it.
    line = usage_error(pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "--judge=clip")
    assert line.startswith("ERROR: --judge: suite semeval has no such setting. Known: bootstrap_samples, ")


def test_an_unknown_data_entry_is_refused(pytester, perfect_unlearning_predictions, tmp_path):
    line = usage_error(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", f"--data=mmlux={tmp_path}"
    )
    assert line == (
        f"ERROR: --data mmlux={tmp_path}: suite semeval has no data entry 'mmlux'; known: forget, mia, mmlu, retain "
        "(or pass its data folder as --data DIR)"
    )


def test_python_m_pytest_unlearn_settings_lists_a_suites_settings():
    listing = subprocess.run(
        [sys.executable, "-m", "pytest_unlearn", "settings", "semeval"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert listing[0] == "settings of suite semeval (backend semeval; --setting KEY=VALUE, manifest [settings]):"
    rows = {line.split()[0]: line for line in listing[1:]}
    assert rows["max_new_tokens"].split()[1:5] == ["int", ">=", "1", "default"]
    assert rows["mia_k"].split()[1:6] == ["float", "in", "(0,", "1]", "default"]
    assert "default 1000" in rows["bootstrap_samples"]
    refused = subprocess.run(
        [sys.executable, "-m", "pytest_unlearn", "settings", "semval"], capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: --suite: Unknown suite 'semval'. Did you mean: semeval?")


def test_pytest_help_with_a_suite_lists_its_settings(pytester):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--suite=wmdp-mini", "--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "settings of suite wmdp-mini (backend wmdp; --setting KEY=VALUE, manifest [settings]):",
            "  mmlu_shots * int >= 0 * default 0 *",
        ]
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--help")
    result.stdout.fnmatch_lines(["*--setting=KEY=VALUE*", "unlearn: pass --suite NAME with --help to list*"])


def test_the_resolver_converts_paths_and_one_string_lists():
    schema = (Setting("images", str, None, path=True), Setting("concepts", list))
    resolved = resolve_settings("genmu", REPO / "m.toml", schema, {}, {"images": "~/x", "concepts": "Golf Ball"})
    assert resolved["concepts"] == ["Golf Ball"] and resolved["images"].name == "x"
    with pytest.raises(UnlearnError, match=r"--setting concepts=\[1\]: concepts must be a list of strings, got \[1\]"):
        resolve_settings("genmu", REPO / "m.toml", schema, {}, {"concepts": [1]})
