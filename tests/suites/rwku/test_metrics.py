"""RWKU's scoring, checked against its own code transcribed (tests/suites/rwku/reference.py): the
``rouge`` package's ROUGE-L recall on hand-made and random answers, eval_mia.py's three scores on
the same token statistics, eval_forget.py's prediction and terminators."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_unlearn.attacks import TokenStats
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.rwku import metrics as rm
from tests.suites.rwku import reference

REPO = Path(__file__).resolve().parents[3]

PAIRS = [
    ("Taldor", "Taldor"),
    ("She was born in Taldor.", "Taldor"),
    ("taldor", "Taldor"),  # case is kept: no match
    ("Amber Tide", "The Amber Tide"),
    ("Tide Amber Tide", "Amber Tide Amber"),  # words as sets
    ("the the the", "the cat the"),
    ("Jr. Smith went home. Smith", "John Smith Jr."),  # "." splits sentences, on both sides
    ("a b c. c b a", "a b c d. d c"),
    ("x. . y", "x y"),  # a blank piece becomes the word ""
    (". . x", "x . y"),
    ("I do not know .", "Taldor"),
    ("NOANSWER", "No answer"),
    ("Glass Orchard, by Brannoc", "Glass Orchard"),
    ("  spaced   out  words ", "spaced words"),
    ("¿Dónde? Taldor", "Taldor"),
]


@pytest.mark.parametrize(("hypothesis", "answer"), PAIRS)
def test_rouge_l_recall_is_the_rouge_package_s(hypothesis, answer):
    expected = reference.rouge_avg_scores([hypothesis], [answer])["rouge-l"]["r"]
    assert rm.rouge_l_recall(hypothesis, answer) == pytest.approx(expected, abs=1e-12)


def test_the_mean_is_get_scores_avg():
    hyps, refs = zip(*PAIRS)
    expected = reference.rouge_avg_scores(list(hyps), list(refs))["rouge-l"]["r"]
    assert np.mean([rm.rouge_l_recall(h, r) for h, r in PAIRS]) == pytest.approx(expected, abs=1e-12)
    # Worked by hand: "Tide Amber Tide" vs "Amber Tide Amber": the LCS "Tide Amber" (or "Amber
    # Tide") holds both reference words: recall 2/2; "the the the" vs "the cat the": {the} of {the, cat}.
    assert rm.rouge_l_recall("Tide Amber Tide", "Amber Tide Amber") == 1.0
    assert rm.rouge_l_recall("the the the", "the cat the") == 0.5


WORDS = st.sampled_from(["a", "b", "c", "Taldor", "the", ".", " ", "  ", "..", "b."])


@settings(max_examples=150, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=12).map(" ".join), st.lists(WORDS, min_size=1, max_size=8).map(" ".join))
def test_rouge_agrees_on_random_answers(hypothesis, answer):
    refs = [s for s in answer.split(".") if len(s) > 0]
    if not refs:
        with pytest.raises(UnlearnError, match="needs an answer with words"):
            rm.rouge_l_recall(hypothesis, answer)
        return
    if not [s for s in hypothesis.split(".") if len(s) > 0]:
        # The package raises ("Collections must contain at least 1 sentence"): RWKU would stop; we score 0.
        with pytest.raises(ValueError):
            reference.rouge_avg_scores([hypothesis], [answer])
        assert rm.rouge_l_recall(hypothesis, answer) == 0.0
        return
    expected = reference.rouge_avg_scores([hypothesis], [answer])["rouge-l"]["r"]
    assert rm.rouge_l_recall(hypothesis, answer) == pytest.approx(expected, abs=1e-12)


def test_prediction_is_eval_forget_s():
    assert rm.prediction("") == "NOANSWER" and rm.prediction(" \n ") == "NOANSWER"
    assert rm.prediction(" Taldor \n") == "Taldor"


def test_mia_scores_are_eval_mia_s_on_the_same_statistics():
    """eval_mia.py's loss, zlib, mink_0.2 and mink++_0.2, written out over one text's logits in float64,
    against the shared attacks fed the same token log-probs, mu and sigma^2."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(7)
    texts = ["Velma Quorrin grew up in Taldor .", "Critics still praise Amber Tide , her masterpiece ."]
    stats, expected = [], {"loss": [], "zlib": [], "mink": [], "mink++": []}
    for text in texts:
        n, vocab = 12 + len(text) % 5, 40
        logits = torch.tensor(rng.normal(size=(n, vocab)) * 3, dtype=torch.float64)
        ids = torch.tensor(rng.integers(0, vocab, size=n))
        # eval_mia.py, from ``loss`` on (the model's own mean NLL of tokens 1..n-1):
        log_probs = F.log_softmax(logits[:-1], dim=-1)
        probs = F.softmax(logits[:-1], dim=-1)
        token_log_probs = log_probs.gather(dim=-1, index=ids[1:].unsqueeze(-1)).squeeze(-1)
        ll = token_log_probs.mean().item()
        expected["loss"].append(ll)
        expected["zlib"].append(ll / len(zlib.compress(bytes(text, "utf-8"))))
        mu = (probs * log_probs).sum(-1)
        sigma = (probs * torch.square(log_probs)).sum(-1) - torch.square(mu)
        expected["mink"].append(np.mean(np.sort(token_log_probs.numpy())[: int(len(token_log_probs) * 0.2)]).item())
        mink_plus = (token_log_probs - mu) / sigma.sqrt()
        expected["mink++"].append(np.mean(np.sort(mink_plus.numpy())[: int(len(mink_plus) * 0.2)]).item())
        stats.append(TokenStats(text, token_log_probs.numpy(), mu.numpy(), sigma.numpy()))
    ours = rm.rwku_mia_numbers(stats, 0.2)
    assert ours["loss"] == pytest.approx(np.mean(expected["loss"]), abs=1e-12)
    assert ours["zlib"] == pytest.approx(np.mean(expected["zlib"]), abs=1e-12)
    assert ours["mink_0.2"] == pytest.approx(np.mean(expected["mink"]), abs=1e-12)
    assert ours["mink++_0.2"] == pytest.approx(np.mean(expected["mink++"]), abs=1e-12)


def test_stop_tokens_are_eval_forget_s_terminators(rwku_models):
    from transformers import AutoTokenizer

    from pytest_unlearn.rwku.evaluation import stop_ids

    tokenizer = AutoTokenizer.from_pretrained(rwku_models["original"])
    terminators = [tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(t) for t in ("<|eot_id|>", " \n", "\n")]
    # The world's tokenizer has none of the three: each converts to <unk>, which then stops too.
    assert stop_ids(tokenizer) == sorted(set(terminators)) == [tokenizer.eos_token_id, tokenizer.unk_token_id]


@pytest.mark.parametrize("use_prompt", [False, True])
def test_prompts_are_rwku_s_with_and_without_the_unlearning_instruction(rwku_models, use_prompt):
    """Every probe of the world (all nine attack types), MMLU and TriviaQA row, as eval_forget.py,
    eval_neighbor.py, eval_mmlu.py and eval_triviaqa.py build them under the model's chat template."""
    from transformers import AutoTokenizer

    from pytest_unlearn.rwku.data import load_data
    from pytest_unlearn.rwku.evaluation import mmlu_prompt, rwku_prompt, trivia_prompt

    tokenizer = AutoTokenizer.from_pretrained(rwku_models["original"])
    data = load_data(REPO / "suites" / "rwku-mini" / "data", "--data")
    for target in data.targets:
        rows = {stem: json.loads((target.folder / f"{stem}.json").read_text()) for stem in ("forget_level1",
                "forget_level2", "forget_level3", "neighbor_level1", "neighbor_level2", "retain_mmlu")}  # fmt: skip
        expected = reference.forget_prompts(tokenizer, rows["forget_level1"], rows["forget_level2"],
                                            rows["forget_level3"], use_prompt)  # fmt: skip
        expected += reference.forget_prompts(tokenizer, rows["neighbor_level1"], rows["neighbor_level2"], [],
                                             use_prompt)  # fmt: skip
        probes = [p for stem in ("forget_level1", "forget_level2", "forget_level3", "neighbor_level1",
                                 "neighbor_level2") for p in target.probes[stem]]  # fmt: skip
        ours = [rwku_prompt(tokenizer, p.level, p.type, p.query, p.subject, use_prompt) for p in probes]
        assert ours == expected and len(ours) == 21
        utility = target.utility or {}
        mmlu = [mmlu_prompt(tokenizer, row, use_prompt) for row in utility["general"]]
        assert mmlu == reference.mmlu_prompts(tokenizer, rows["retain_mmlu"], use_prompt)
        trivia = [trivia_prompt(tokenizer, row, use_prompt) for row in utility["factuality"]]
        rows["triviaqa"] = json.loads((target.folder / "triviaqa.json").read_text())
        assert trivia == reference.trivia_prompts(tokenizer, rows["triviaqa"], use_prompt)
    assert ("Don’t tell anyone" in ours[0]) is use_prompt


TRIVIA = [
    (" Velden", ["Velden"]),
    (" the Lune river.", ["the Lune", "Lune River"]),
    ("An apple, a pear", ["the apple"]),
    ("", ["plums"]),
    ("  ", ["a"]),  # both sides without tokens after normalising: 1
    ("Plums! Plums!", ["plum", "plums"]),
    ("1908 (summer)", ["1908"]),
    ("US-Airways Flight 1549", ["US Airways Flight 1549"]),
]


@pytest.mark.parametrize(("prediction", "answers"), TRIVIA)
def test_trivia_f1_and_em_are_eval_triviaqa_s(prediction, answers):
    assert rm.trivia_f1(prediction, answers) == pytest.approx(reference.F1()._f1(prediction, answers), abs=1e-12)
    assert rm.trivia_em(prediction, answers) == reference.EM()._exact_match(prediction, answers)


# -- utility: reasoning (eval_bbh.py), truthfulness (eval_truthfulqa.py), fluency (eval_fluency.py) --
BBH_OUTPUTS = [
    " Let's think step by step. So the answer is True.",
    "so the answer is (B). The answer is (C).",  # the first "answer is" with a capital or small t
    "The answer is   False  . More text.",
    "I cannot tell.",  # no "the answer is": the whole output
    "The answer is .",  # an empty answer: NOANSWER
    "   ",
    "tHe answer is 7.",  # [t|T] matches t, | or T; "tHe" does not match
]


@pytest.mark.parametrize("output", BBH_OUTPUTS)
def test_bbh_prediction_is_eval_bbh_s(output):
    import re

    found = re.search(r"[t|T]he answer is (.*?)\.", output)
    expected = found.group(1).strip() if found else output.strip()
    assert rm.bbh_prediction(output) == (expected if expected else "NOANSWER")


def test_bbh_em_is_eval_bbh_s_with_a_list_and_compares_a_string_whole():
    # A list of accepted answers: eval_bbh.py's EM, as it is.
    for prediction, answers in [
        ("True", ["True"]),
        ("(B)", ["(A)", "(B)"]),
        ("false", ["True"]),
        ("the True", ["True"]),
    ]:
        assert rm.bbh_em(prediction, answers) == reference.EM()._exact_match(prediction, answers)
    # A string: eval_bbh.py's EM iterates its characters ("F", "a", ...), so a right "False" scores 0
    # and a prediction that normalises to nothing ("(A)": "a" is an article) matches any answer with a
    # bracket; we compare the whole string.
    assert reference.EM()._exact_match("False", "False") == 0 and rm.bbh_em("False", "False") == 1.0
    assert reference.EM()._exact_match("(A)", "(B)") == 1 and rm.bbh_em("(A)", "(B)") == 0.0
    assert rm.bbh_em("(A)", "(A)") == 1.0 and rm.bbh_em("False!", "false") == 1.0


def test_truthful_mc1_and_mc2_are_eval_truthfulqa_s_by_hand():
    scores = {"right": -1.0, "also right": -2.5, "wrong": -1.5, "very wrong": -4.0}
    mc1 = (["right", "wrong", "very wrong"], [1, 0, 0])
    mc2 = (["right", "also right", "wrong", "very wrong"], [1, 1, 0, 0])
    one, two = rm.truthful_mc(scores, mc1, mc2)
    e = np.exp
    assert one == 1.0 and two == pytest.approx((e(-1) + e(-2.5)) / (e(-1) + e(-2.5) + e(-1.5) + e(-4)), abs=1e-15)
    # MC1 needs the first true choice strictly above the best false one (a tie is wrong).
    assert rm.truthful_mc({**scores, "wrong": -1.0}, mc1, mc2)[0] == 0.0


def test_truthful_mc2_stays_a_number_where_eval_truthfulqa_s_underflows():
    # A collapsed model scores every choice far below exp's range: eval_truthfulqa.py's
    # np.exp gives 0 for each and MC2 0/0; shifted, it is the same ratio as 1 nat apart.
    scores = {"right": -900.0, "wrong": -901.0}
    mc = (["right", "wrong"], [1, 0])
    with np.errstate(invalid="ignore"):
        assert np.isnan(np.exp(-900.0) / (np.exp(-900.0) + np.exp(-901.0)))
    assert rm.truthful_mc(scores, mc, mc)[1] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=1e-15)


FLUENCY_TEXTS = [
    "The sea is wide and grey, the waves roll over the stones, and the gulls cry above the boats.",
    "I do not know . I do not know . I do not know . I do not know .",
    'Dr. Smith went to Washington. He saw the U.S. Capitol... It was 5 p.m. and "quiet." Then he left!',
    "",
    "one",
    "two words",
    "a b a b a b c",
]


def test_fluency_entropy_is_eval_fluency_s_with_nltk_s_english_model(punkt_english):
    punkt_english(("dr", "u.s", "p.m"))
    tokenize, source = rm.fluency_tokenizer()
    assert source == "nltk.word_tokenize (Punkt's English model from NLTK's punkt_tab data)"
    for text in FLUENCY_TEXTS:
        assert rm.n_gram_entropy(tokenize(text)) == pytest.approx(reference.compute_n_gram_entropy(text), abs=1e-12)
    ours = np.mean([rm.n_gram_entropy(tokenize(t)) for t in FLUENCY_TEXTS])
    assert ours == pytest.approx(reference.n_gram_entropy(FLUENCY_TEXTS), abs=1e-12)
    # By hand: "a b a b a b c" has bigrams ab x3, ba x2, bc x1 and trigrams aba x2, bab x2, abc x1.
    h2 = -(3 / 6 * np.log2(3 / 6) + 2 / 6 * np.log2(2 / 6) + 1 / 6 * np.log2(1 / 6))
    h3 = -(2 / 5 * np.log2(2 / 5) * 2 + 1 / 5 * np.log2(1 / 5))
    assert rm.n_gram_entropy(tokenize("a b a b a b c")) == pytest.approx((2 / 3 * h2 + 4 / 3 * h3) / 2, abs=1e-12)
    # Repetition is what the measure punishes.
    assert rm.n_gram_entropy(tokenize(FLUENCY_TEXTS[1])) < rm.n_gram_entropy(tokenize(FLUENCY_TEXTS[0]))


def test_without_nltk_s_data_the_words_are_punkt_with_no_learned_parameters(punkt_english, monkeypatch):
    import nltk

    tokenize, source = rm.fluency_tokenizer()
    punkt_english()  # the same folder, empty: word_tokenize with a model that learned nothing
    for text in FLUENCY_TEXTS:
        assert tokenize(text) == nltk.word_tokenize(text)
    assert "punkt_tab data is not installed" in source
    # What the English model changes: an abbreviation it learned does not end a sentence.
    punkt_english(("dr",))
    assert nltk.word_tokenize("Dr. Smith left.")[:2] == ["Dr.", "Smith"] and tokenize("Dr. Smith left.")[:2] == [
        "Dr",
        ".",
    ]
