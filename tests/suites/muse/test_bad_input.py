"""Bad MUSE input is one clear line naming the flag or file, before any model loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_bad_input import usage_error

DATA = Path(__file__).resolve().parents[3] / "suites" / "muse-mini" / "data"
LAYOUT = (
    "MUSE's layout has verbmem/forget.json, knowmem/{forget,retain}_qa.json and {forget,retain}_qa_icl.json, "
    "privleak/{forget,holdout}.json (muse_bench's load_data.py writes it)"
)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import write_tiny_olmo

    folder = tmp_path_factory.mktemp("muse-bad") / "model"
    write_tiny_olmo(folder)
    return folder


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A copy of the miniature world's data folder (data/news/...), to damage."""
    shutil.copytree(DATA, tmp_path / "data")
    return tmp_path / "data"


def run(pytester: pytest.Pytester, *args: str) -> str:
    return usage_error(pytester, "--suite=muse-mini", *args)


def test_the_muse_suite_needs_data(pytester, model_folder):
    assert usage_error(pytester, "--suite=muse", f"--model={model_folder}") == (
        "ERROR: --suite muse needs MUSE's data: pass --data DIR (muse_bench's data folder or one corpus folder in it)"
    )


def test_no_such_data_folder(pytester, tmp_path, model_folder):
    missing = tmp_path / "nowhere"
    assert usage_error(pytester, "--suite=muse", f"--model={model_folder}", f"--data={missing}") == (
        f"ERROR: --data {missing}: no such folder; pass MUSE's data folder (or one corpus folder in it)"
    )


def test_missing_files_of_the_layout(pytester, data, model_folder):
    (data / "news" / "privleak" / "holdout.json").unlink()
    (data / "news" / "knowmem" / "retain_qa_icl.json").unlink()
    assert run(pytester, f"--model={model_folder}", f"--data={data}") == (
        f"ERROR: --data {data / 'news'}: no knowmem/retain_qa_icl.json, privleak/holdout.json (corpus=news); {LAYOUT}"
    )


def test_a_corpus_the_data_does_not_have(pytester, model_folder):
    line = run(pytester, f"--model={model_folder}", "--setting", "corpus=books")
    assert line.startswith(f"ERROR: suite muse-mini's bundled data {DATA}: no verbmem/forget.json, ")
    assert line.endswith(f"(corpus=books); {LAYOUT}")


def test_malformed_json(pytester, data, model_folder):
    path = data / "news" / "verbmem" / "forget.json"
    path.write_text('[{"prompt": "a", ')
    assert run(pytester, f"--model={model_folder}", f"--data={data}") == (
        f"ERROR: {path}: not JSON (Expecting property name enclosed in double quotes at line 1); "
        "MUSE's files are JSON lists"
    )


def test_a_record_without_its_fields(pytester, data, model_folder):
    path = data / "news" / "knowmem" / "forget_qa.json"
    path.write_text(json.dumps([{"question": "Who?", "answer": "Ana"}, {"question": "When?"}]))
    assert run(pytester, f"--model={model_folder}", f"--data={data}") == (
        f"ERROR: {path}: record 2 needs the strings question, answer"
    )


def test_a_privleak_file_of_objects_without_text(pytester, data, model_folder):
    path = data / "news" / "privleak" / "forget.json"
    path.write_text(json.dumps(["A text.", {"body": "no text key"}]))
    assert run(pytester, f"--model={model_folder}", f"--data={data}") == (
        f'ERROR: {path}: record 2 is not a non-empty text (a string, or {{"text": ...}})'
    )


def test_a_file_that_is_not_utf8(pytester, data, model_folder):
    path = data / "news" / "privleak" / "holdout.json"
    path.write_bytes(b'["caf\xe9"]')
    assert run(pytester, f"--model={model_folder}", f"--data={data}") == (
        f"ERROR: {path}:1: not UTF-8 text (byte 5: invalid continuation byte); save the file as UTF-8"
    )


def test_a_question_repeated_with_another_answer(pytester, data, model_folder):
    path = data / "news" / "knowmem" / "retain_qa.json"
    path.write_text(json.dumps([{"question": "Who?", "answer": "Ana"}, {"question": "Who?", "answer": "Bo"}]))
    assert run(pytester, f"--model={model_folder}", f"--data={data}") == (
        f"ERROR: {path}: question 'Who?' appears on lines 1 and 2 with different content; keep one of them "
        "(a later row must not silently decide a verdict)"
    )


def test_a_question_in_forget_and_retain(pytester, data, model_folder):
    forget = data / "news" / "knowmem" / "forget_qa.json"
    retain = data / "news" / "knowmem" / "retain_qa.json"
    shared = json.loads(forget.read_text())[0]
    retain.write_text(json.dumps([{"question": "Other?", "answer": "x"}, shared]))
    assert run(pytester, f"--model={model_folder}", f"--data={data}") == (
        f"ERROR: question {shared['question']!r} is in both {forget} (line 1) and {retain} (line 2); "
        "a question is about the forget or the retain corpus, not both"
    )


def test_a_text_both_forget_and_holdout(pytester, data, model_folder):
    forget = data / "news" / "privleak" / "forget.json"
    holdout = data / "news" / "privleak" / "holdout.json"
    holdout.write_text(json.dumps(["A new text.", json.loads(forget.read_text())[2]]))
    line = run(pytester, f"--model={model_folder}", f"--data={data}")
    assert line.startswith("ERROR: text ") and line.endswith(
        f"is in both {forget} (line 3) and {holdout} (line 2); "
        "PrivLeak's holdout texts are ones the model was never trained on"
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("corpus=movies", "--setting corpus=movies: unknown MUSE corpus; use news or books"),
        (
            "muse_variant=tofu",
            "--setting muse_variant=tofu: unknown variant; use muse (muse_bench's scoring) or open-unlearning",
        ),
        ("mink_k=0", "--setting mink_k=0.0: the Min-K% fraction must be in (0, 1] (MUSE: 0.4)"),
        (
            "knowmem_retain_target=150",
            "--setting knowmem_retain_target=150: expected a number in (0, 100] (its KnowMem on retain, x 100)",
        ),
        ("auc_retrain=high", "--setting auc_retrain=high: expected a number in (0, 1] (an AUC)"),
        (
            "verbmem_max_new_tokens=0",
            "suite muse-mini (manifest or --setting): setting 'verbmem_max_new_tokens' must be at least 1, got 0",
        ),
    ],
)
def test_bad_settings(pytester, model_folder, setting, message):
    assert run(pytester, f"--model={model_folder}", "--setting", setting) == f"ERROR: {message}"


def test_no_model(pytester):
    assert run(pytester) == (
        "ERROR: --suite muse-mini needs --model PATH (the unlearned model's folder) or --predictions FILE "
        "(open-unlearning's MUSE_EVAL.json)"
    )


def test_no_such_reference(pytester, tmp_path, model_folder):
    missing = tmp_path / "retrained"
    assert run(pytester, f"--model={model_folder}", f"--reference={missing}") == (
        f"ERROR: --reference {missing}: no such file or folder; pass the retrained model's folder"
    )


def test_a_reference_that_is_not_a_model_folder(pytester, tmp_path, model_folder):
    logs = tmp_path / "retrained.json"
    logs.write_text("{}")
    assert run(pytester, f"--model={model_folder}", f"--original-model={logs}") == (
        f"ERROR: --original-model {logs}: expected a model folder (with config.json), got a file"
    )


def test_an_identical_repeat_is_kept_once_and_said(pytester, data, model_folder):
    path = data / "news" / "verbmem" / "forget.json"
    path.write_text(
        json.dumps([{"prompt": "A.", "gt": " b"}, {"prompt": "C.", "gt": " d"}, {"prompt": "A.", "gt": " b"}])
    )
    # A warning in the scorecard; under --unlearn-strict the one line of a usage error.
    assert run(pytester, f"--model={model_folder}", f"--data={data}", "--unlearn-strict") == (
        f"ERROR: {path}: 1 identical duplicate record(s) kept once ('A.' on records 1 and 3); multi-process runs "
        "pad their output this way (--strict turns warnings into errors)"
    )


def test_no_such_original_model(pytester, tmp_path, model_folder):
    missing = tmp_path / "target"
    assert run(pytester, f"--model={model_folder}", f"--original-model={missing}") == (
        f"ERROR: --original-model {missing}: no such file or folder; pass the folder of the model before unlearning"
    )


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("privleak/forget.json", {"text": "one"}, "expected a JSON list of texts"),
        ("privleak/holdout.json", [], "no texts"),
        ("knowmem/forget_qa_icl.json", [], "no records"),
        ("verbmem/forget.json", {"prompt": "a", "gt": "b"}, "expected a JSON list of objects with prompt, gt"),
    ],
)
def test_a_file_of_the_wrong_shape(pytester, data, model_folder, file, content, message):
    path = data / "news" / file
    path.write_text(json.dumps(content))
    assert run(pytester, f"--model={model_folder}", f"--data={data}") == f"ERROR: {path}: {message}"


def check_error(pytester: pytest.Pytester, check: str, *args: str) -> str:
    """The error a check of the run ends with (a failed check, not a usage error)."""
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--suite=muse-mini", "--scorecard=card.json", *args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    card = json.loads((pytester.path / "card.json").read_text())
    return {c["id"]: c for c in card["checks"]}[check]["error"]


def test_the_utility_ratio_without_the_original_model(pytester, model_folder):
    assert check_error(pytester, "knowmem-retain-ratio", f"--model={model_folder}", "-k", "ratio") == (
        "the KnowMem-retain ratio needs the original (target) model: pass --original-model PATH, or "
        "--setting knowmem_retain_target=VALUE (its KnowMem on retain, x 100)"
    )


def test_a_privleak_text_of_one_token(pytester, data, model_folder):
    (data / "news" / "privleak" / "holdout.json").write_text(json.dumps(["A holdout text.", "x"]))
    assert check_error(pytester, "privleak", f"--model={model_folder}", f"--data={data}", "-k", "privleak") == (
        "PrivLeak holdout text 2: a single token, nothing to score; remove it"
    )


def test_relearn_s_held_out_half_and_the_lines_that_refuse_it(tmp_path, model_folder):
    # --stress relearn:data=forget-half: VerbMem and KnowMem keep the held-out items; PrivLeak's
    # forget texts that hold a trained excerpt leave its member set; a half that leaves a set
    # empty is one line naming the set.
    from dataclasses import replace

    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.evaluation import RunSettings, create_backend
    from pytest_unlearn.manifest import resolve_suite

    settings = RunSettings(model=model_folder, artifacts=tmp_path / "artifacts", device="cpu")
    backend = create_backend(resolve_suite("muse-mini"), settings)
    data = backend.data
    excerpts = [f"verbmem-{p.index}" for p in data.verbmem]
    questions = [f"knowmem-forget-{qa.index}" for qa in data.forget]
    assert [row for row, _ in backend.stress_texts("forget")] == excerpts + questions
    trained = data.verbmem[0]
    holding = [t for t in data.privleak["forget"] if trained.prompt.strip() in t or trained.gt.strip() in t]
    assert holding  # the world's excerpts are cut from its PrivLeak forget texts
    backend.hold_out(set(excerpts[1:] + questions[::2]))
    assert backend.data.verbmem == data.verbmem[1:]
    assert backend.data.forget == data.forget[::2]
    assert backend.data.privleak["forget"] == [t for t in data.privleak["forget"] if t not in holding]
    assert backend.data.privleak["holdout"] == data.privleak["holdout"]

    for kept, line in (
        (questions, f"the held-out half has no VerbMem forget item ({len(excerpts)} in all)"),
        (excerpts, f"the held-out half has no KnowMem forget item ({len(questions)} in all)"),
    ):
        backend = create_backend(resolve_suite("muse-mini"), settings)
        with pytest.raises(UnlearnError) as refused:
            backend.hold_out(set(kept))
        assert (
            str(refused.value) == f"--stress relearn:data=forget-half: {line}; choose another seed or relearn:data=PATH"
        )
    backend = create_backend(resolve_suite("muse-mini"), settings)
    backend.data = replace(backend.data, privleak={**backend.data.privleak, "forget": holding})
    with pytest.raises(UnlearnError) as refused:
        backend.hold_out(set(excerpts[1:] + questions))
    assert str(refused.value) == (
        "--stress relearn:data=forget-half: every PrivLeak forget text holds a trained VerbMem excerpt; "
        "choose another seed or relearn:data=PATH"
    )
