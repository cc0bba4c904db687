"""``--stress`` through the real plugin on the SemEval world: the sibling checks, recovery, the
card's ``stress`` section, relearn's held-out half, and one line for each misuse."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FORGET_FILE = Path(__file__).resolve().parent.parent / "suites" / "semeval" / "data" / "forget.jsonl"
FORGET = [f"task{t}-{k}-forget" for t in (1, 2, 3) for k in ("regurgitation", "knowledge")] + ["mia-score"]


@pytest.fixture(scope="module")
def stress_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The stress libraries hold C extensions: import them once in the outer process (pytester's
    # in-process runs cannot import such a module a second time).
    from pytest_unlearn.noise import import_quietly

    import_quietly("bitsandbytes")
    import peft  # noqa: F401

    return tmp_path_factory.mktemp("stress-cache")


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--suite=semeval", "--scorecard=card.json", *args)
    card_path = pytester.path / "card.json"
    return result, json.loads(card_path.read_text()) if card_path.exists() else {}


def test_quantized_copy_is_scored_beside_the_model(pytester, semeval_models, stress_cache):
    result, card = run(
        pytester,
        f"--model={semeval_models['retrained']}",
        f"--original-model={semeval_models['target']}",
        "--stress=quantize:int8",
        f"--cache-dir={stress_cache}",
    )
    assert result.ret == 0, result.stdout.str()
    checks = {c["id"]: c for c in card["checks"]}
    # Every forget-side check has its sibling with the same threshold; retain checks have none.
    for base in FORGET:
        assert checks[f"{base}@int8"]["threshold"] == checks[base]["threshold"]
        assert checks[f"{base}@int8"]["metric"] == checks[base]["metric"]
    assert not any(c.endswith("-retain@int8") for c in checks)
    # The retrained model never knew the forget set: quantizing it recovers nothing.
    recovery = checks["recovery@int8"]
    assert recovery["passed"] and abs(recovery["value"]) < 0.05 and recovery["threshold"] == 0.25
    # Measured against the original quantized alike: its copy made, scored on every forget check.
    original_copy = recovery["details"]["original_copy"]
    assert Path(original_copy["path"]).is_dir() and original_copy["path"] != card["stress"]["int8"]["copy"]["path"]
    assert card["stress"]["int8"]["original_copy"]["path"] == original_copy["path"]
    for row in recovery["details"]["checks"]:
        assert row["original_stressed"] is not None and row["check"] in FORGET
    section = card["stress"]["int8"]
    assert section["transform"] == {"kind": "quantize", "name": "int8", "scheme": "int8", "block": None}
    assert section["copy"]["library"]["bitsandbytes"] == "0.50.2"
    assert section["copy"]["tensors_quantized"] > 0 and section["copy"]["seconds"] >= 0
    assert section["copy"]["source_fingerprint"] == card["provenance"]["weights"]["--model"]["fingerprint"] or (
        section["copy"]["source_fingerprint"].startswith("sha256:")
    )
    assert set(section["checks"]) == set(FORGET)
    assert {row["check"] for row in section["retain"]} >= {"mmlu", "task1-knowledge-retain"}
    # What produced the sibling's value: the copy, not --model.
    origin = card["provenance"]["checks"]["task1-knowledge-forget@int8"][0]
    assert origin["kind"] == "stressed model" and origin["path"] == section["copy"]["path"]
    assert "task1-knowledge-forget@int8" not in card["model"]["checks"]
    # The page shows each forget check before and after the stress.
    page = (pytester.path / "card.html").read_text()
    assert "<h2>Under --stress int8</h2>" in page and page.count('aria-label="before and after"') == len(FORGET)
    # The terminal groups the stressed checks under their stress.
    result.stdout.fnmatch_lines(["*under --stress int8 (quantize, bitsandbytes 0.50.2)*", "*recovery@int8*PASS*"])


def test_shallow_unlearning_passes_plain_and_fails_relearn(pytester, semeval_models, stress_cache):
    from fixtures.figures import STRESS_ARGS, readme_block, stress_table
    from fixtures.worlds import models

    shallow = models("semeval-shallow")["shallow"]
    common = (*STRESS_ARGS[1:], f"--original-model={semeval_models['target']}", f"--cache-dir={stress_cache}")
    cards = {}
    for name, path in (("retrained", semeval_models["retrained"]), ("shallow", shallow)):
        result, cards[name] = run(pytester, f"--model={path}", *common)
        assert result.ret == (0 if name == "retrained" else pytest.ExitCode.TESTS_FAILED), result.stdout.str()
        # The terminal heading of the relearn checks names how the copy was made.
        result.stdout.fnmatch_lines(
            ["*-- under --stress relearn (relearn, steps=10 lr=0.001 batch=4 data=forget-half*seed=0*"]
        )
    for card in cards.values():  # both pass every plain check
        assert all(c["passed"] for c in card["checks"] if "@" not in c["id"])
    checks = {c["id"]: c for c in cards["shallow"]["checks"]}
    assert not checks["recovery@relearn"]["passed"] and checks["recovery@relearn"]["value"] > 0.25
    assert not all(checks[f"{base}@relearn"]["passed"] for base in FORGET)
    assert checks["recovery@int4"]["passed"]  # the world is too small to show int4 recovery (docs)
    assert stress_table(cards) == readme_block("stress"), (
        "docs/stress.md's figures drifted: python -m fixtures.figures --write stress"
    )

    # Relearn's protocol on the retrained card: a seeded half of the forget documents trained on,
    # the other half scored (its prompts and its MIA members only).
    checks = {c["id"]: c for c in cards["retrained"]["checks"]}
    copy = checks["task1-knowledge-forget@relearn"]["details"]["stress"]
    trained = set(copy["trained_on"])
    forget_rows = [json.loads(line) for line in FORGET_FILE.read_text().splitlines() if line.strip()]
    documents = {row["id"][:-3] for row in forget_rows}
    assert len(documents) == 18 and len(trained) == 9 and trained <= documents
    assert "scored on the other 9" in copy["holdout"] and len(copy["losses"]) == 10
    for kind in ("knowledge", "regurgitation"):
        for task in (1, 2, 3):
            scored = [r for r in forget_rows if r["task"] == f"Task{task}" and r["id"][:-3] not in trained]
            scored = [r for r in scored if (r["id"][-3:-1] == "qa") == (kind == "knowledge")]
            assert checks[f"task{task}-{kind}-forget@relearn"]["n"] == len(scored)
    assert checks["mia-score@relearn"]["n"] == checks["mia-score"]["n"] - 9
    # The same seed makes the same copy: a second run reuses it.
    again, card = run(pytester, f"--model={semeval_models['retrained']}", *common)
    assert again.ret == 0
    copy_again = {c["id"]: c for c in card["checks"]}["task1-knowledge-forget@relearn"]["details"]["stress"]
    assert copy_again["path"] == copy["path"] and copy_again["reused"] is True


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--stress=quantize:int3",), "*--stress quantize takes one of int4, nf4, int8, e.g. quantize:int4, got 'quantize:int3'*"),
        (("--stress=quantize:int4", "--stress=quantize:int4"), "*--stress int4 given twice*"),
        (("--threshold=task1-knowledge-forget@int4=0.5",), "*--threshold task1-knowledge-forget@int4=…: that check exists only with --stress*"),
        (("--stress=quantize:int4", "--threshold=task9@int4=0.5"), "*suite 'semeval' has no check 'task9@int4'*"),
    ],
)  # fmt: skip
def test_misuse_is_one_line(pytester, semeval_models, args, line):
    result = pytester.runpytest_inprocess("--suite=semeval", f"--model={semeval_models['retrained']}", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.lines + result.stderr.lines
    assert len([text for text in output if fnmatch.fnmatch(text, line)]) == 1, output
    assert "Traceback" not in "\n".join(output)


def test_stress_needs_a_language_model_folder(pytester, tmp_path, perfect_unlearning_predictions):
    result = pytester.runpytest_inprocess(
        "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "--stress=quantize:int4"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (result.stderr.str() + result.stdout.str()).count("--stress needs --model PATH") == 1
    pipeline = tmp_path / "pipe"
    pipeline.mkdir()
    (pipeline / "model_index.json").write_text("{}")
    result = pytester.runpytest_inprocess("--suite=semeval", f"--model={pipeline}", "--stress=relearn")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        f"--stress relearn:data=forget-half (relearn's default): --model {pipeline} is a diffusion pipeline and the "
        "diffusion suites have no forget image set to train on"
    ) in (result.stderr.str() + result.stdout.str())
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"")
    result = pytester.runpytest_inprocess("--suite=semeval", f"--model={checkpoint}", "--stress=quantize:int8")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--stress: --model {checkpoint} is a single checkpoint file" in result.stderr.str() + result.stdout.str()


def test_without_the_original_the_siblings_gate_and_recovery_is_said_missing(pytester, semeval_models, stress_cache):
    result, card = run(
        pytester, f"--model={semeval_models['retrained']}", "--stress=quantize:int8", f"--cache-dir={stress_cache}"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    ids = {c["id"] for c in card["checks"]}
    assert {f"{base}@int8" for base in FORGET} <= ids and "recovery@int8" not in ids
    line = (
        "--stress without --original-model: recovery@int8 not scored (recovery measures the gap to the model "
        "before unlearning); pass --original-model PATH to bound it"
    )
    assert card["warnings"].count(line) == 1
    result.stdout.fnmatch_lines([f"*{line}*"])


def test_a_suite_without_a_held_out_half_says_what_it_can_relearn_on(pytester):
    # rwku ships probes, not a forget corpus, and no retain texts: only data=PATH is suggested.
    from fixtures.worlds import models

    model = next(iter(models("rwku").values()))
    result = pytester.runpytest_inprocess("--suite=rwku-mini", f"--model={model}", "--stress=relearn")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    line = (
        "--stress relearn:data=forget-half: the rwku-mini suite cannot score a held-out half of its forget set; "
        "pass relearn:data=PATH"
    )
    assert (result.stdout.str() + result.stderr.str()).count(line) == 1


def test_the_refusal_suggests_retain_only_to_a_suite_with_retain_texts():
    from types import SimpleNamespace

    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.evaluation import Backend

    class Without(Backend):
        compute = metric_inputs = aggregates = None  # never called: only the refusal line is

    class WithRetain(Without):
        def stress_texts(self, part):
            return [("r0", "a retain text")]

    for kind, advice in (
        (Without, "pass relearn:data=PATH"),
        (WithRetain, "pass relearn:data=retain or relearn:data=PATH"),
    ):
        backend = object.__new__(kind)
        backend.manifest = SimpleNamespace(name="custom")
        with pytest.raises(UnlearnError) as excinfo:
            backend.hold_out(set())
        assert str(excinfo.value).endswith(f"held-out half of its forget set; {advice}")
