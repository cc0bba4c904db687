"""Bad RWKU input is one clear line naming the flag or file, before any model loads (or, for what
only a model pass finds, one line on the checks that need it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_bad_input import usage_error

DATA = Path(__file__).resolve().parents[3] / "suites" / "rwku-mini" / "data"
LAYOUT = (
    "RWKU's layout is Target/<n>_<Name>/ with forget_level1.json, forget_level2.json, forget_level3.json, "
    "neighbor_level1.json, neighbor_level2.json, forget_mia.json, retain_mia.json (its process/data_process.py "
    "writes it)"
)
FIX = "pass the folder RWKU's evaluation (or a previous run's rwku/ artifacts) wrote"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A copy of the miniature world's Target folder, to damage."""
    shutil.copytree(DATA, tmp_path / "data")
    return tmp_path / "data" / "Target"


def run(pytester: pytest.Pytester, *args: str) -> str:
    return usage_error(pytester, "--suite=rwku-mini", *args)


def test_the_rwku_suite_needs_data(pytester, rwku_models):
    assert usage_error(pytester, "--suite=rwku", f"--model={rwku_models['original']}") == (
        "ERROR: --suite rwku needs RWKU's data: pass --data DIR (its Target folder, one folder per target)"
    )


def test_no_such_data_folder_and_no_target_folders(pytester, tmp_path, rwku_models):
    model = f"--model={rwku_models['original']}"
    missing = tmp_path / "nowhere"
    assert run(pytester, model, f"--data={missing}") == (
        f"ERROR: --data {missing}: no such folder; pass RWKU's Target folder ({LAYOUT})"
    )
    (tmp_path / "empty").mkdir()
    assert run(pytester, model, f"--data={tmp_path / 'empty'}") == (
        f"ERROR: --data {tmp_path / 'empty'}: no target folders (<n>_<Name>); {LAYOUT}"
    )


def test_a_target_folder_missing_files(pytester, data, rwku_models):
    folder = data / "2_Brannoc_Ilsey"
    (folder / "forget_level3.json").unlink()
    (folder / "retain_mia.json").unlink()
    assert run(pytester, f"--model={rwku_models['original']}", f"--data={data}") == (
        f"ERROR: --data {folder}: no forget_level3.json, retain_mia.json; {LAYOUT}"
    )


def test_bad_records(pytester, data, rwku_models):
    model = f"--model={rwku_models['original']}"
    path = data / "1_Velma_Quorrin" / "forget_level2.json"
    rows = json.loads(path.read_text())
    path.write_text("[{")
    assert run(pytester, model, f"--data={data}").startswith(
        f"ERROR: {path}: not JSON (Expecting property name enclosed in double quotes at line 1)"
    )
    del rows[1]["answer"]
    path.write_text(json.dumps(rows))
    assert run(pytester, model, f"--data={data}") == (
        f'ERROR: {path} record 2: field "answer" is missing; fix or regenerate the file'
    )
    rows[1]["answer"] = "..."
    path.write_text(json.dumps(rows))
    assert run(pytester, model, f"--data={data}") == (
        f"ERROR: {path} record 2: field \"answer\" = '...' is only full stops, which RWKU's ROUGE cannot score; fix "
        "or regenerate the file"
    )
    rows[1]["answer"] = "Merrowgate"
    rows[1]["level"] = "3"
    path.write_text(json.dumps(rows))
    assert run(pytester, model, f"--data={data}") == (
        f"ERROR: {path} record 2: level '3' in a level-2 file; RWKU's level is the string of the file's level"
    )
    level3 = data / "1_Velma_Quorrin" / "forget_level3.json"
    path.write_text(json.dumps([{**r, "level": "2"} for r in rows]))
    probes = json.loads(level3.read_text())
    del probes[4]["type"]
    level3.write_text(json.dumps(probes))
    assert run(pytester, model, f"--data={data}") == (
        f'ERROR: {level3} record 5: field "type" is missing; a level-3 probe names its attack'
    )


def test_unknown_targets(pytester, rwku_models):
    model = f"--model={rwku_models['original']}"
    assert run(pytester, model, "--setting=targets=4") == (
        "ERROR: --setting targets=4: the data has 3 target(s); give a count from 1 to 3, names, or all"
    )
    assert run(pytester, model, "--setting=targets=Velma Quorrin,Taylor Swift") == (
        "ERROR: --setting targets: no target 'Taylor Swift' in the data; its targets are Velma Quorrin, "
        "Brannoc Ilsey, Sefa Korrindale"
    )


def test_a_model_or_predictions_is_needed_and_predictions_must_cover_the_probes(pytester, tmp_path, rwku_models):
    assert run(pytester) == (
        "ERROR: --suite rwku-mini needs --model PATH (the unlearned model's folder) or --predictions DIR "
        "(RWKU's forget.json and neighbor.json results)"
    )
    answers = tmp_path / "answers"
    answers.mkdir()
    assert run(pytester, f"--predictions={answers}") == (
        f"ERROR: --predictions {answers}: no forget.json (nor */forget.json); {FIX}"
    )
    (answers / "forget.json").write_text(json.dumps({"level_1_rouge_l_r": 0.0}))
    assert run(pytester, f"--predictions={answers}") == (
        f'ERROR: --predictions {answers / "forget.json"}: no "results" list (RWKU\'s result files hold one); {FIX}'
    )
    row = {"query": "q", "answer": "a", "level": "1", "subject": "Velma Quorrin", "prediction": "a"}
    (answers / "forget.json").write_text(json.dumps({"results": [row]}))
    (answers / "neighbor.json").write_text(json.dumps({"results": [row]}))
    assert run(pytester, f"--predictions={answers}") == (
        f"ERROR: --predictions {answers}: no forget answer to the level-1 probe 'Velma Quorrin was born in the city "
        f"of ___ .' of Velma Quorrin; {FIX} for the same data and targets"
    )
    del row["prediction"]
    (answers / "forget.json").write_text(json.dumps({"results": [row]}))
    assert run(pytester, f"--predictions={answers}") == (
        f'ERROR: --predictions {answers / "forget.json"} result 1: field "prediction" is missing; {FIX}'
    )


def test_what_a_model_pass_finds_is_one_line_on_its_checks(pytester, tmp_path, rwku_models):
    """No chat template (RWKU asks through it); no --original-model for the neighbour and MIA checks."""
    from tests.tiny_models import write_tiny_olmo

    plain = tmp_path / "plain"
    write_tiny_olmo(plain)
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite=rwku-mini",
        f"--model={plain}",
        "--scorecard=card.json",
        "-k",
        "forget-level1",
        "--unlearn-partial",
    )
    card = {c["id"]: c for c in json.loads((pytester.path / "card.json").read_text())["checks"]}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert card["forget-level1"]["error"] == (
        f"--model {plain}: the tokenizer has no chat template, and RWKU asks every probe through it "
        "(apply_chat_template); use the chat/instruct model or add chat_template to tokenizer_config.json"
    )
    # The world's model has its template; without --original-model the comparisons cannot be made.
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=rwku-mini", f"--model={rwku_models['original']}", "--scorecard=card.json",
        "-k", "neighbor-level1 or mia-forget-loss", "--unlearn-partial",
    )  # fmt: skip
    card = {c["id"]: c for c in json.loads((pytester.path / "card.json").read_text())["checks"]}
    assert card["neighbor-level1-ratio"]["error"] == (
        "RWKU's neighbour checks compare with the model before unlearning: pass --original-model PATH"
    )
    assert card["mia-forget-loss"]["error"] == (
        "RWKU's MIA checks compare the passages' scores with the model before unlearning: pass --original-model PATH"
    )


def test_the_general_utility_set_is_all_or_nothing_and_each_row_is_checked(pytester, data, rwku_models):
    model = f"--model={rwku_models['original']}"
    (data / "3_Sefa_Korrindale" / "retain_mmlu.json").unlink()
    assert run(pytester, model, f"--data={data}") == (
        f"ERROR: --data {data}: retain_mmlu.json is in 1_Velma_Quorrin, 2_Brannoc_Ilsey but not in "
        "3_Sefa_Korrindale; give it to every selected target (RWKU's utility_general) or to none"
    )
    trivia = data / "2_Brannoc_Ilsey" / "triviaqa.json"
    questions = json.loads(trivia.read_text())
    questions[1]["answers"] = []
    trivia.write_text(json.dumps(questions))
    assert run(pytester, model, f"--data={data}", "--setting=targets=2") == (
        f'ERROR: {trivia} record 2: field "answers" is empty; give the accepted answers'
    )
    path = data / "1_Velma_Quorrin" / "retain_mmlu.json"
    rows = json.loads(path.read_text())
    rows[0]["examples"][0]["choices"] = ["x", "y"]
    path.write_text(json.dumps(rows))
    assert run(pytester, model, f"--data={data}", "--setting=targets=2") == (
        f"ERROR: {path} record 1 example 1: needs 4 choices and an answer from 0 to 3 (got 2 choices, answer 2); "
        "RWKU's eval_mmlu.py letters them A-D"
    )


def test_a_missing_utility_set_is_skipped_with_one_header_line(pytester, data, rwku_models):
    for folder in data.iterdir():
        (folder / "retain_mmlu.json").unlink()
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=rwku-mini", f"--model={rwku_models['proper']}", f"--data={data}",
        f"--original-model={rwku_models['original']}", "--scorecard=card.json", "--collect-only",
    )  # fmt: skip
    result.stdout.fnmatch_lines(["unlearn: utility-general-ratio skipped: no retain_mmlu.json in the target folders"])
    assert "utility-general-ratio" not in result.stdout.str().replace("utility-general-ratio skipped", "")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=rwku-mini", f"--model={rwku_models['proper']}", "--collect-only"
    )
    result.stdout.fnmatch_lines(
        ["unlearn: utility-general-ratio skipped: it compares with the original model; pass --original-model"]
    )


def test_the_reasoning_truthfulness_and_fluency_rows_are_checked(pytester, data, rwku_models):
    model = (f"--model={rwku_models['original']}", f"--data={data}", "--setting=targets=1")
    truthful = data / "1_Velma_Quorrin" / "truthful.json"
    rows = json.loads(truthful.read_text())
    rows[1]["mc1_targets"]["labels"] = [1]
    truthful.write_text(json.dumps(rows))
    assert run(pytester, *model) == (
        f"ERROR: {truthful} record 2: mc1_targets has 2 choices and 1 labels; give one 0/1 label per choice"
    )
    rows[1]["mc1_targets"]["labels"] = [1, 1]
    truthful.write_text(json.dumps(rows))
    assert run(pytester, *model) == (
        f"ERROR: {truthful} record 2: mc1_targets needs a true (1) and a false (0) choice; eval_truthfulqa.py "
        "scores the true against the false"
    )
    rows[1]["mc1_targets"]["labels"] = [1, 0]
    rows[0]["mc2_targets"]["labels"] = [0, 0, 0]
    truthful.write_text(json.dumps(rows))
    assert run(pytester, *model) == (
        f"ERROR: {truthful} record 1: mc2_targets needs a true (1) choice; eval_truthfulqa.py scores the true "
        "against the false"
    )
    rows[0]["mc2_targets"]["labels"] = [1, 2, 0]
    truthful.write_text(json.dumps(rows))
    assert run(pytester, *model) == (
        f'ERROR: {truthful} record 1: field "mc2_targets.labels.1" = 2 has the wrong type (Input should be 0 or 1); '
        "fix or regenerate the file"
    )
    truthful.unlink()
    bbh = data / "1_Velma_Quorrin" / "retain_bbh.json"
    questions = json.loads(bbh.read_text())
    del questions[0]["cot"]
    bbh.write_text(json.dumps(questions))
    assert run(pytester, *model) == f'ERROR: {bbh} record 1: field "cot" is missing; fix or regenerate the file'
    bbh.unlink()
    fluency = data / "1_Velma_Quorrin" / "fluency.json"
    fluency.write_text("[]")
    assert run(pytester, *model) == f"ERROR: {fluency}: no records"
