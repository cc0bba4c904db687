"""The RWKU suite discriminates, through the real plugin, on the miniature RWKU world
(fixtures/rwku_world.py), every model against ``original`` as --original-model:

- ``original`` knows all three people: every forget level is 1, it fails every forget check;
- ``shallow`` (rejection-tuned on the first two targets' direct probes): L1 and L2 pass on the
  targets it unlearned, but every adversarial attack still extracts the answers (L3 1.0) and its
  forget passages are as likely as before (MIA FM 0): RWKU's shallow unlearning, caught;
- ``proper`` (retrained without the first two targets): passes every check on those targets
  (``--setting targets=2``, RWKU's batch of the first two), and fails the forget levels when the
  third target, which it still knows, is selected too.

RWKU's own scoring code, transcribed (tests/suites/rwku/reference.py: the rouge package,
generate_completions, eval_forget.py, eval_mia.py), recounts the suite's numbers to 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.suites.rwku import reference

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "suites" / "rwku-mini" / "data" / "Target"
DOC = REPO / "docs" / "suites" / "rwku.md"
START, END = "<!-- rwku-figures:start (tests/suites/rwku/test_world.py checks it) -->", "<!-- rwku-figures:end -->"


def run_suite(pytester: pytest.Pytester, cache: Path, *args: str) -> tuple[int, dict]:
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite=rwku-mini", f"--cache-dir={cache}", "--scorecard=card.json", *args
    )
    return int(result.ret), json.loads((pytester.path / "card.json").read_text())


def checks(card: dict) -> dict[str, dict]:
    return {c["id"]: c for c in card["checks"]}


def failing(card: dict) -> list[str]:
    return [c["id"] for c in card["checks"] if not c["passed"]]


def target_rows(name: str, count: int) -> list[dict]:
    folders = sorted((p for p in DATA.iterdir() if p.is_dir()), key=lambda p: int(p.name.split("_")[0]))
    return [row for folder in folders[:count] for row in json.loads((folder / f"{name}.json").read_text())]


@pytest.fixture(scope="module")
def cards() -> dict[str, dict]:
    """Each model's scorecard, for the doc's figures."""
    return {}


def test_shallow_unlearning_is_caught_by_the_attacks_and_mia_and_rwku_s_code_agrees(
    pytester, rwku_models, rwku_cache, cards, punkt_english
):
    code, card = run_suite(
        pytester, rwku_cache, f"--model={rwku_models['shallow']}", f"--original-model={rwku_models['original']}",
        "--setting=targets=2", "--batch-size=1",
    )  # fmt: skip
    assert code == pytest.ExitCode.TESTS_FAILED
    c = checks(card)
    assert sorted(failing(card)) == sorted(
        ["forget-level3", "mia-forget-loss", "mia-forget-zlib", "mia-forget-mink", "mia-forget-mink-pp"]
        + [k for k in c if k.startswith("forget-level3-")]
    )
    assert c["forget-level1"]["value"] == 0.0 and c["forget-level2"]["value"] == 0.0
    assert c["forget-level3"]["value"] == 1.0 and c["forget-level1"]["details"]["original"] == 1.0
    assert list(c["forget-level3"]["details"]["per_type"]) == [r["type"] for r in target_rows("forget_level3", 1)]
    assert card["settings"]["targets"] == ["Velma Quorrin", "Brannoc Ilsey"]
    assert c["forget-level1"]["n"] == 8 and c["forget-level3"]["n"] == 18 and c["mia-forget-loss"]["n"] == 4

    # RWKU's eval_forget.py on the same model and targets, one prompt at a time.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(rwku_models["shallow"])
    tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(rwku_models["shallow"]).eval()
    levels = [target_rows(f"forget_level{n}", 2) for n in (1, 2, 3)]
    scores, results = reference.eval_forget(model, tokenizer, *levels)
    for level in ("1", "2", "3"):
        assert c[f"forget-level{level}"]["value"] == pytest.approx(scores[level], abs=1e-9)
    ours = json.loads(Path(card["artifacts"]["rwku_forget"]).read_text())["results"]

    def answers(rows: list[dict]) -> dict[tuple[str, str], str]:
        return {(r["level"], r["query"]): r["prediction"] for r in rows}

    assert answers(ours) == answers(results) and len(ours) == len(results) == 34
    assert results[0]["prediction"] == "I do not know ." and results[-1]["prediction"] == "Merrowgate"

    # eval_mia.py's numbers are the scorecard's (model and original, forget and retain members).
    aggregates = card["aggregates"]
    original = AutoModelForCausalLM.from_pretrained(rwku_models["original"]).eval()
    from pytest_unlearn.engines.causal_lm import token_statistics

    for prefix, scored in (("", model), ("original_", original)):
        for split in ("forget", "retain"):
            passages = target_rows(f"{split}_mia", 2)
            expected = reference.eval_mia(scored, tokenizer, passages)
            # End to end, eval_mia.py reduces in float32 (the model's own loss, np.mean of float32
            # Min-K% and Min-K%++ values), we in float64 over the same float32 token statistics:
            # float32 rounding apart (at most 1.3e-8 measured, Min-K%).
            assert aggregates[f"{prefix}mia_{split}"] == pytest.approx(expected, abs=3e-8)
            # eval_mia.py's scoring on the world's own token statistics (the run's, recomputed one
            # passage at a time as the run did): to 1e-12.
            texts = [p["text"] for p in passages]
            stats = token_statistics(scored, tokenizer, texts, batch_size=1, device="cpu", vocabulary=True)
            per_text = [
                reference.mia_text_scores(text, *(np.asarray(s[key]) for key in ("logprobs", "mu", "sigma2")))
                for text, s in zip(texts, stats)
            ]
            expected = {key: float(np.mean([t[key] for t in per_text])) for key in per_text[0]}
            assert aggregates[f"{prefix}mia_{split}"] == pytest.approx(expected, abs=1e-12)
    # eval_mmlu.py's accuracy and answers (utility_general), model and original.
    for name, scored, key in (("rwku_mmlu", model, "utility_general"), ("rwku_original_mmlu", original, None)):
        accuracy, predictions = reference.eval_mmlu(scored, tokenizer, target_rows("retain_mmlu", 2))
        assert aggregates[key or "original_utility_general"] == pytest.approx(accuracy, abs=1e-12)
        rows = json.loads(Path(card["artifacts"][name]).read_text())["results"]
        assert [r["prediction"] for r in rows] == predictions and accuracy == 1.0
    assert c["utility-general-ratio"]["value"] == 1.0 and c["utility-general-ratio"]["n"] == 4
    # eval_triviaqa.py's EM, F1 and answers (utility_factuality).
    em, f1, outputs = reference.eval_triviaqa(model, tokenizer, target_rows("triviaqa", 2))
    rows = json.loads(Path(card["artifacts"]["rwku_triviaqa"]).read_text())
    assert [r["prediction"] for r in rows["results"]] == outputs and outputs[0] == " the Lune"
    assert (rows["EM"], rows["F1"]) == pytest.approx((em, f1), abs=1e-12)
    assert aggregates["utility_factuality"] == pytest.approx(f1, abs=1e-12) and (em, f1) == (1.0, 1.0)
    # eval_bbh.py's answers and EM (utility_reason; the world's answers are single strings, which
    # eval_bbh.py's EM would iterate by character: here as the one-answer list it means).
    em, predictions, outputs = reference.eval_bbh(model, tokenizer, target_rows("retain_bbh", 2))
    rows = json.loads(Path(card["artifacts"]["rwku_bbh"]).read_text())
    assert [r["raw_output"] for r in rows["results"]] == outputs and [r["prediction"] for r in rows["results"]] == (
        predictions
    )
    answers_as_lists = [[r["answer"]] for r in target_rows("retain_bbh", 2)]
    assert rows["EM"] == reference.EM()(predictions, answers_as_lists)["em"] == 1.0 and em == 0.0
    assert outputs[0] == " Let's think step by step. So the answer is True." and predictions[0] == "True"
    # eval_truthfulqa.py's MC1 and MC2 (utility_truthfulness), model and original: the same choice
    # log-probabilities batched another way (float32 rounding apart).
    for name, scored in (("rwku_truthful", model), ("rwku_original_truthful", original)):
        mc1, mc2, per_question = reference.eval_truthfulqa(scored, tokenizer, target_rows("truthful", 2))
        rows = json.loads(Path(card["artifacts"][name]).read_text())
        for row, (one, two, choice_scores) in zip(rows["results"], per_question, strict=True):
            assert row["scores"] == pytest.approx(choice_scores, abs=1e-4) and row["MC1"] == one
            assert row["MC2"] == pytest.approx(two, abs=1e-6)
        assert (rows["MC1"], rows["MC2"]) == pytest.approx((mc1, mc2), abs=1e-6) and mc1 == 1.0
        assert min(v for *_, scores in per_question for v in scores.values()) < -5  # the false choices
    rows = json.loads(Path(card["artifacts"]["rwku_truthful"]).read_text())
    assert c["utility-truthfulness-ratio"]["details"]["mc2"] == rows["MC2"]
    # eval_fluency.py's answers and entropy (utility_fluency), with nltk.word_tokenize over the
    # English model this run had: none (NLTK's data is not installed here), i.e. an empty one.
    assert card["settings"]["fluency_words"].startswith("nltk Punkt without its English model")
    punkt_english()
    entropy, outputs = reference.eval_fluency(model, tokenizer, target_rows("fluency", 2))
    rows = json.loads(Path(card["artifacts"]["rwku_fluency"]).read_text())
    assert [r["prediction"] for r in rows["results"]] == outputs and len(outputs) == 2
    assert rows["entropy"] == aggregates["utility_fluency"] == pytest.approx(entropy, abs=1e-12) and entropy > 3

    # The FM check is the change of the mean LOSS: (-ll of the model) - (-ll of the original).
    fm = -aggregates["mia_forget"]["loss"] + aggregates["original_mia_forget"]["loss"]
    assert c["mia-forget-loss"]["value"] == pytest.approx(fm, abs=1e-12)
    cards["shallow"] = card


def test_proper_unlearning_passes_on_its_targets_and_fails_with_the_one_it_kept(
    pytester, rwku_models, rwku_cache, cards
):
    models = (f"--model={rwku_models['proper']}", f"--original-model={rwku_models['original']}")
    code, card = run_suite(pytester, rwku_cache, *models, "--setting=targets=Velma Quorrin,2_Brannoc_Ilsey")
    assert code == pytest.ExitCode.OK, failing(card)
    c = checks(card)
    assert c["forget-level3"]["value"] == 0.0 and c["neighbor-level1-ratio"]["value"] == 1.0
    assert c["mia-forget-loss"]["value"] > 1.0 and abs(c["mia-retain-loss"]["value"]) < 0.1
    cards["proper"] = card

    # All three targets (the default): the third, never unlearned, is still known.
    code, card = run_suite(pytester, rwku_cache, *models, "-k", "forget-level")
    assert code == pytest.ExitCode.TESTS_FAILED
    c = checks(card)
    assert c["forget-level1"]["details"]["per_target"] == {"Velma Quorrin": 0.0, "Brannoc Ilsey": 0.0,
                                                           "Sefa Korrindale": 1.0}  # fmt: skip
    assert c["forget-level1"]["value"] == pytest.approx(1 / 3) and c["forget-level1"]["n"] == 12
    assert card["aggregates"]["forget_level3_per_target"]["Sefa Korrindale"] == 1.0


def test_the_original_model_fails_every_forget_check(pytester, rwku_models, rwku_cache, cards):
    path = rwku_models["original"]
    code, card = run_suite(pytester, rwku_cache, f"--model={path}", f"--original-model={path}", "--setting=targets=2")
    assert code == pytest.ExitCode.TESTS_FAILED
    assert all(c["value"] == 1.0 for k, c in checks(card).items() if k.startswith("forget-level"))
    assert set(failing(card)) == {k for k in checks(card) if k.startswith(("forget", "mia-forget"))}
    cards["original"] = card


def test_predictions_rescore_the_forget_and_neighbour_checks(pytester, rwku_models, rwku_cache, tmp_path):
    args = (f"--original-model={rwku_models['original']}", "--setting=targets=2")
    code, card = run_suite(pytester, rwku_cache, f"--model={rwku_models['shallow']}", *args, "-k", "not mia")
    answers = tmp_path / "answers"
    Path(card["artifacts"]["rwku_forget"]).parent.rename(answers)
    code, again = run_suite(pytester, rwku_cache, f"--predictions={answers}", *args)
    c, first = checks(again), checks(card)
    for key in (k for k in first if k.startswith(("forget", "neighbor"))):
        assert c[key]["value"] == first[key]["value"], key
    # MIA and MMLU need the weights: one line each, the other checks scored.
    assert c["mia-forget-loss"]["error"] == (
        "RWKU's MIA checks score the model's token log-probs: pass --model PATH (--predictions holds answers only)"
    )
    assert c["utility-general-ratio"]["error"] == "RWKU's utility checks score the weights: pass --model PATH"


UTILITIES = ("general", "reasoning", "truthfulness", "factuality", "fluency")


def figures_table(cards: dict[str, dict]) -> str:
    """The world's figures as docs/suites/rwku.md shows them (targets 1-2), from the scorecards."""
    lines = [
        "| model | L1 | L2 | L3 | attacks that still extract every answer | neighbour L1 / L2 ratio | FM LOSS change | RM LOSS change | utility ratios: general / reasoning / truthfulness / factuality / fluency | fails |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("original", "shallow", "proper"):
        c = checks(cards[name])
        per_type = c["forget-level3"]["details"]["per_type"]
        extracted = sum(v == 1.0 for v in per_type.values())
        lines.append(
            f"| {name} | {c['forget-level1']['value']:.3f} | {c['forget-level2']['value']:.3f} | "
            f"{c['forget-level3']['value']:.3f} | {extracted} of {len(per_type)} | "
            f"{c['neighbor-level1-ratio']['value']:.2f} / {c['neighbor-level2-ratio']['value']:.2f} | "
            f"{c['mia-forget-loss']['value']:+.4f} | {c['mia-retain-loss']['value']:+.4f} | "
            + " / ".join(f"{c[f'utility-{u}-ratio']['value']:.2f}" for u in UTILITIES)
            + " | "
            f"{len(failing(cards[name]))} |"
        )
    return "\n".join(lines)


def test_the_doc_s_figures_are_the_world_s(cards):
    if len(cards) < 3:
        pytest.skip("needs the three world runs above")
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index(START) + len(START) : text.index(END)].strip()
    assert block == figures_table(cards), "docs/suites/rwku.md figures drifted; now:\n" + figures_table(cards)
