"""Bad TOFU input is one clear line naming the flag or file, before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_unlearn.tofu.logs import dump_logs
from tests.suites.tofu.test_metrics import _random_logs
from tests.test_bad_input import usage_error

DATA = Path(__file__).resolve().parents[3] / "suites" / "tofu-mini" / "data"


def write_logs(path: Path, n: int = 10, forget_n: int | None = None, edit=None) -> Path:
    logs = dump_logs(_random_logs(np.random.default_rng(n), n=n))
    if forget_n is not None:
        logs["eval_log_forget.json"] = dump_logs(_random_logs(np.random.default_rng(1), n=forget_n))[
            "eval_log_forget.json"
        ]
    if edit:
        edit(logs)
    path.write_text(json.dumps(logs))
    return path


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    from tests.tiny_models import write_tiny_olmo

    folder = tmp_path / "model"
    write_tiny_olmo(folder)
    return folder


def test_missing_split_file(pytester, tmp_path, model_folder):
    line = usage_error(pytester, "--suite=tofu-mini", f"--model={model_folder}", "--setting", "forget_split=forget01")
    assert line == (
        f"ERROR: bundled data {DATA}: no forget01_perturbed.json (forget_split=forget01); TOFU's layout has "
        "forget01_perturbed.json, retain_perturbed.json, real_authors_perturbed.json, world_facts_perturbed.json"
    )


def test_tofu_suite_has_no_bundled_data(pytester, model_folder):
    line = usage_error(pytester, "--suite=tofu", f"--model={model_folder}")
    assert line.startswith("ERROR: suite manifest ") and line.endswith("no bundled TOFU data; pass --data DIR")


def test_wrong_keys_in_a_log(pytester, tmp_path):
    def drop(logs):
        del logs["eval_log.json"]["avg_paraphrased_loss"]

    logs = write_logs(tmp_path / "model.json", edit=drop)
    line = usage_error(pytester, "--suite=tofu-mini", f"--predictions={logs}")
    assert line == (
        f"ERROR: --predictions {logs} eval_log.json: no avg_paraphrased_loss (has average_perturb_loss, avg_gt_loss, "
        "rougeL_recall); pass the log TOFU's evaluate_util.py writes"
    )


def test_not_a_tofu_log(pytester, tmp_path):
    path = tmp_path / "card.json"
    path.write_text(json.dumps({"results": {}}))
    line = usage_error(pytester, "--suite=tofu-mini", f"--predictions={tmp_path / 'nope.json'}")
    assert line == f"ERROR: --predictions {tmp_path / 'nope.json'}: no such file or folder"
    line = usage_error(pytester, "--suite=tofu-mini", f"--predictions={path}")
    assert line.startswith(f"ERROR: --predictions {path}: neither TOFU's eval_log_aggregated.json")


def test_reference_of_another_split_or_size(pytester, tmp_path):
    model = write_logs(tmp_path / "model.json")
    reference = write_logs(tmp_path / "ref.json", forget_n=5)
    line = usage_error(pytester, "--suite=tofu-mini", f"--predictions={model}", f"--reference={reference}")
    assert line == (
        f"ERROR: --reference {reference}: its forget log has 5 samples, the model's 10; evaluate the reference "
        "on the same forget split (forget_split=forget10)"
    )


def test_logs_of_different_lengths(pytester, tmp_path):
    def shorten(logs):
        del logs["eval_log_forget.json"]["rougeL_recall"]["9"]

    logs = write_logs(tmp_path / "model.json", edit=shorten)
    line = usage_error(pytester, "--suite=tofu-mini", f"--predictions={logs}")
    assert line == (
        f"ERROR: --predictions {logs} eval_log_forget.json: rougeL_recall has 9 samples but avg_gt_loss has 10; "
        "the values of one log must cover the same samples"
    )


def test_logs_not_matching_the_data(pytester, tmp_path):
    logs = write_logs(tmp_path / "model.json", n=7)
    line = usage_error(pytester, "--suite=tofu-mini", f"--predictions={logs}", f"--data={DATA}")
    assert line == (
        f"ERROR: --predictions {logs}: the retain log has 7 samples, the data 90 (forget_split=forget10, "
        "ds_size=300); evaluate the same questions"
    )


def test_missing_reference_is_one_line_per_check(pytester, tmp_path):
    logs = write_logs(tmp_path / "model.json")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--suite=tofu-mini", f"--predictions={logs}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["forget-quality: forget quality needs the retain model: pass --reference PATH (a model or its logs)"]
    )


def test_duplicate_and_shared_questions(pytester, tmp_path, model_folder):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    retain = data / "retain_perturbed.json"
    lines = retain.read_text().splitlines()
    retain.write_text("\n".join([*lines, lines[0]]) + "\n")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=tofu-mini", f"--model={model_folder}", f"--data={data}", "--co"
    )
    assert result.ret == pytest.ExitCode.OK
    line = usage_error(pytester, "--suite=tofu-mini", f"--model={model_folder}", f"--data={data}", "--unlearn-strict")
    assert line == (
        f"ERROR: {retain}: 1 identical duplicate record(s) kept once ('Where was Taspel Renpelvi born?' on records "
        "1 and 91); multi-process runs pad their output this way (--strict turns warnings into errors)"
    )
    forget = data / "forget10_perturbed.json"
    forget.write_text(forget.read_text() + lines[3] + "\n")
    line = usage_error(pytester, "--suite=tofu-mini", f"--model={model_folder}", f"--data={data}")
    assert line == (
        f"ERROR: question 'What is a famous book by Taspel Renpelvi?' is in both {forget} (line 11) and {retain} "
        "(line 4); a question belongs to the forget or the retain set, not both"
    )


def test_reference_scorecard_of_another_split(pytester, tmp_path):
    model = write_logs(tmp_path / "model.json")
    logs = write_logs(tmp_path / "ref-logs.json")
    card = tmp_path / "ref-card.json"
    card.write_text(
        json.dumps(
            {
                "schema": "pytest-unlearn/scorecard/1",
                "settings": {"forget_split": "forget05"},
                "artifacts": {"tofu_logs": str(logs)},
            }
        )
    )
    line = usage_error(pytester, "--suite=tofu-mini", f"--predictions={model}", f"--reference={card}")
    assert line == (
        f"ERROR: --reference {card}: a scorecard of forget_split=forget05, this run is forget_split=forget10; "
        "evaluate the reference on the same forget split"
    )
    semeval_card = tmp_path / "semeval-card.json"
    semeval_card.write_text(json.dumps({"schema": "pytest-unlearn/scorecard/1", "artifacts": {"generations": "g"}}))
    line = usage_error(pytester, "--suite=tofu-mini", f"--predictions={model}", f"--reference={semeval_card}")
    assert line == (
        f"ERROR: --reference {semeval_card}: a scorecard without tofu_logs artifacts; pass a --suite tofu scorecard"
    )


def test_mia_check_without_a_holdout_file(pytester, tmp_path, model_folder):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    (data / "holdout10.json").unlink()
    manifest = tmp_path / "mia.toml"
    text = (DATA.parent / "manifest.toml").read_text()
    text += '\n[[checks]]\nid = "forget-mia"\nmetric = "tofu.mia_auc"\nop = "<="\nthreshold = 0.75\n'
    manifest.write_text(text.replace('tofu = "data"', f'tofu = "{data}"'))
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--suite={manifest}", f"--model={model_folder}", "-k", "mia"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            f"forget-mia: no holdout10.json in {data}: the membership-inference check compares the forget "
            "answers with TOFU's holdout split"
        ]
    )


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "max_length=lots",
            "ERROR: suite tofu-mini (manifest or --setting): setting 'max_length' must be an integer, got 'lots'",
        ),
        (
            "max_new_tokens=0",
            "ERROR: suite tofu-mini (manifest or --setting): setting 'max_new_tokens' must be at least 1, got 0",
        ),
        ("ds_size=-1", "ERROR: suite tofu-mini (manifest or --setting): setting 'ds_size' must be >= 0, got -1"),
        ("forget_split=forget1", "ERROR: --setting forget_split=forget1: expected forget01, forget05 or forget10"),
    ],
)
def test_bad_settings(pytester, tmp_path, setting, expected):
    logs = write_logs(tmp_path / "model.json")
    assert usage_error(pytester, "--suite=tofu-mini", f"--predictions={logs}", "--setting", setting) == expected


def test_relearn_s_held_out_half_cuts_the_reference_logs_to_the_same_questions(tmp_path, model_folder):
    # --stress relearn:data=forget-half scores the other half of the forget questions; a reference
    # given as logs is cut to the same questions by its sample numbers (TOFU's "0", "1", ...).
    from dataclasses import replace

    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.evaluation import RunSettings, create_backend
    from pytest_unlearn.manifest import resolve_suite

    forget_n = len((DATA / "forget10_perturbed.json").read_text().splitlines())
    logs = write_logs(tmp_path / "reference.json", forget_n=forget_n)
    settings = RunSettings(model=model_folder, reference=logs, artifacts=tmp_path / "artifacts", device="cpu")
    backend = create_backend(resolve_suite("tofu-mini"), settings)
    whole, retain = backend._reference_logs["forget"], backend._reference_logs["retain"]
    kept = {"1", "4", str(forget_n - 1)}
    backend.hold_out(kept)
    assert [q.index for q in backend.data["forget"]] == sorted(kept, key=int)
    cut = backend._reference_logs["forget"]
    assert cut.indices == tuple(sorted(kept, key=int))
    assert list(cut.gt_loss) == [whole.gt_loss[int(i)] for i in cut.indices]
    assert backend._reference_logs["retain"] is retain  # the other tasks are scored whole

    # Logs numbered otherwise cannot give the same questions: one line, naming --reference.
    renumbered = json.loads(logs.read_text())
    for key, values in renumbered["eval_log_forget.json"].items():
        if isinstance(values, dict):
            renumbered["eval_log_forget.json"][key] = {str(int(i) + 100): v for i, v in values.items()}
    other = tmp_path / "renumbered.json"
    other.write_text(json.dumps(renumbered))
    backend = create_backend(resolve_suite("tofu-mini"), replace(settings, reference=other))
    with pytest.raises(UnlearnError, match=r"^--reference .*renumbered.json: its forget log does not number"):
        backend.hold_out(kept)
