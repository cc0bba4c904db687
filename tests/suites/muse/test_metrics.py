"""MUSE's metrics on hand-computed inputs: ROUGE-L F1 (both variants), the KnowMem cut and prompt,
Min-K% scores and the forget/holdout AUC in MUSE's orientation, PrivLeak and its sign."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_unlearn.attacks import TokenStats
from pytest_unlearn.muse import metrics as mm


def test_rouge_l_is_f1_not_recall():
    # reference: alpha beta gamma delta (4 words), candidate: alpha beta (2 words).
    # LCS = "alpha beta" = 2: precision 2/2, recall 2/4, F1 = 2 * 1 * 0.5 / 1.5 = 2/3.
    # muse_bench's logger reports mean_rougeL = score['rougeL'].fmeasure, so 2/3, not the recall 1/2.
    assert mm.rouge_l_f1("alpha beta gamma delta", "alpha beta", stem=False) == pytest.approx(2 / 3)


def test_rouge_l_counts_the_longest_common_subsequence():
    # the cat sat on the mat / the cat lay on the mat: LCS = the cat . on the mat = 5 of 6 each way,
    # P = R = F1 = 5/6 (rouge_score lower-cases and drops punctuation first).
    assert mm.rouge_l_f1("The cat sat on the mat.", "the cat lay on the mat", stem=False) == pytest.approx(5 / 6)


def test_the_stemmer_is_what_the_variants_differ_in():
    # reference tokens: the dogs were running; candidate: a dog runs.
    # No stemmer (MUSE): no word in common, F1 = 0.
    # Porter stemmer (open-unlearning; rouge_score stems words longer than 3 letters):
    # the dog were run / a dog run: LCS = dog run = 2, P = 2/3, R = 2/4, F1 = (2/3)/(7/6) = 4/7.
    assert mm.rouge_l_f1("the dogs were running", "a dog runs", stem=False) == 0.0
    assert mm.rouge_l_f1("the dogs were running", "a dog runs", stem=True) == pytest.approx(4 / 7)


def test_knowmem_prompt_is_muse_bench_s():
    prompt = mm.knowmem_prompt([("Who led it?", "Ana Lee"), ("When?", "1999")], "Where?")
    assert (
        prompt
        == "Question: Who led it?\nAnswer: Ana Lee\n\nQuestion: When?\nAnswer: 1999\n\nQuestion: Where?\nAnswer: "
    )
    assert mm.knowmem_prompt([], "Where?") == "Question: Where?\nAnswer: "


@pytest.mark.parametrize(
    ("raw", "muse", "open_unlearning"),
    [
        ("Ana Lee\n\nQuestion: When?", "Ana Lee", "Ana Lee"),
        (" 137 people\nQuestion: x", " 137 people", "137 people"),
        ("first Question: second", "first ", "first"),
        # The earliest stop word wins whatever its order in the list ("\nQuestion" before "\n\n").
        ("a\nQuestion b\n\nc", "a", "a"),
        ("no stop word at all ", "no stop word at all ", "no stop word at all"),
    ],
)
def test_knowmem_answers_are_cut_at_the_first_stop_word(raw, muse, open_unlearning):
    assert mm.cut_answer(raw, "muse") == muse
    assert mm.cut_answer(raw, "open-unlearning") == open_unlearning


def stats(*logprobs: float) -> TokenStats:
    return TokenStats("text", np.array(logprobs, dtype=float))


def test_min_k_scores_and_the_forget_holdout_auc():
    # Min-40%: minus the mean of the lowest int(0.4 n) token log-probs.
    # forget 1: n = 5 -> 2 lowest (-0.5, -0.4): 0.45;  forget 2: n = 3 -> 1 lowest (-1.0): 1.0
    # holdout 1: n = 5 -> (-4, -3): 3.5;             holdout 2: n = 3 -> (-0.9): 0.9
    forget = mm.min_k_scores([stats(-0.1, -0.2, -0.3, -0.4, -0.5), stats(-1.0, -0.2, -0.6)])
    holdout = mm.min_k_scores([stats(-2, -3, -1, -4, -2), stats(-0.8, -0.9, -0.7)])
    np.testing.assert_allclose(forget, [0.45, 1.0])
    np.testing.assert_allclose(holdout, [3.5, 0.9])
    # MUSE labels the holdout texts members (1) and ranks by minus the score: a holdout text wins
    # a pair when its score is lower than the forget text's. Pairs (h, f): (3.5, 0.45) no,
    # (3.5, 1.0) no, (0.9, 0.45) no, (0.9, 1.0) yes: AUC = 1/4.
    assert mm.forget_holdout_auc(forget, holdout) == 0.25
    # A tie counts a half: forget (1.0), holdout (1.0, 2.0): pairs tie, no -> (0.5 + 0) / 2.
    assert mm.forget_holdout_auc(np.array([1.0]), np.array([1.0, 2.0])) == 0.25


def test_min_k_takes_one_token_where_muse_would_take_none():
    # n = 2: int(0.8) = 0 tokens in muse_bench (a NaN score); the shared attack keeps 1: 0.6.
    np.testing.assert_allclose(mm.min_k_scores([stats(-0.3, -0.6)]), [0.6])


def test_privleak_and_its_sign():
    # (0.25 - 0.5) / 0.5 * 100 = -50: the forget texts are more likely than unseen ones (under-unlearning).
    assert mm.privleak(0.25, 0.5) == -50.0
    # (0.9 - 0.4772) / 0.4772 * 100 = 0.4228 / 0.4772 * 100 = 88.60...: the forget texts became less
    # likely than unseen ones (over-unlearning).
    assert mm.privleak(0.9, 0.4772) == pytest.approx(88.6001676)
    assert mm.privleak(0.4772, 0.4772) == 0.0
    assert np.isnan(mm.privleak(0.3, 0.0))  # undefined: a bootstrap replicate drops it
    # open-unlearning: the same, with 1e-10 in the denominator.
    assert mm.privleak(0.25, 0.5, "open-unlearning") == pytest.approx(-50.0, abs=1e-6)
    assert mm.PUBLISHED_AUC_RETRAIN == {"news": 0.47719999999999996, "books": 0.5392999999999999}


def inputs(**fields) -> mm.MuseInputs:
    base = {
        "verbmem": np.array([1.0, 0.5, 0.0]),
        "knowmem": {"forget": np.array([0.2, 0.4]), "retain": np.array([0.3, 0.5, 0.7])},
        "original_retain": np.array([0.6, 0.6]),
        "original_source": "test",
        "privleak": {"forget": np.array([0.45, 1.0]), "holdout": np.array([3.5, 0.9])},
        "auc_retrain": 0.5,
        "auc_retrain_source": "test constant",
    }
    return mm.MuseInputs(**{**base, **fields})


def test_registered_metrics_on_hand_made_scores():
    x = inputs()
    verb = mm.verbmem_metric(x)
    assert (verb.value, verb.n) == (pytest.approx(50.0), 3)  # (1 + 0.5 + 0) / 3 x 100
    assert mm.knowmem_forget_metric(x).value == pytest.approx(30.0)
    assert mm.knowmem_retain_metric(x).value == pytest.approx(50.0)
    ratio = mm.knowmem_retain_ratio(x)
    assert ratio.value == pytest.approx(50 / 60)
    assert ratio.details["original_knowmem_retain"] == pytest.approx(60.0)
    leak = mm.privleak_metric(x)
    # AUC 0.25 (above), AUC_retrain 0.5: PrivLeak -50; the check takes |PrivLeak| = 50.
    assert leak.value == 50.0 and leak.n == 4
    assert leak.details["privleak"] == -50.0 and leak.details["auc_retrain_source"] == "test constant"


def test_the_retrained_model_s_auc_replaces_the_constant():
    # Reference forget (2.0), holdout (1.0, 3.0): pairs (1 < 2 yes), (3 < 2 no): AUC 1/2.
    x = inputs(reference_privleak={"forget": np.array([2.0]), "holdout": np.array([1.0, 3.0])}, auc_retrain=None)
    assert x.retrain_auc() == 0.5
    assert mm.privleak_metric(x).details["privleak"] == -50.0
    card = mm.aggregates(x)
    assert (card["auc"], card["auc_retrain"], card["privleak"]) == (0.25, 0.5, -50.0)


def test_a_bootstrap_replicate_is_paired_across_models():
    scores = np.array([0.3, 0.5, 0.7])
    x = inputs(
        knowmem={"forget": np.array([0.2, 0.4]), "retain": scores},
        original_retain=scores + 1,
        reference_privleak={"forget": np.array([10.45, 11.0]), "holdout": np.array([13.5, 10.9])},
    )
    for seed in range(5):
        rep = x.resample(np.random.default_rng(seed), ("knowmem", "original", "privleak", "reference"))
        # The same retain questions for the model and the original, the same texts for the
        # model and the retrained model (their scores here are the model's + 1 and + 10).
        np.testing.assert_allclose(rep.original_retain, rep.knowmem["retain"] + 1)
        for split in ("forget", "holdout"):
            np.testing.assert_allclose(rep.reference_privleak[split], rep.privleak[split] + 10)
        assert rep.verbmem is x.verbmem  # not required: untouched
    # One value (a setting) is not resampled; a model compared with itself gives PrivLeak 0 always.
    single = inputs(original_retain=np.array([0.6]), reference_privleak=x.privleak)
    values = []
    for seed in range(10):
        rep = single.resample(np.random.default_rng(seed), ("knowmem", "original", "privleak", "reference"))
        assert rep.original_retain.tolist() == [0.6]
        values.append(mm.privleak_metric(rep).value)
    # 0 in every replicate, or undefined (NaN, dropped) where a draw makes both AUCs 0.
    assert all(v == 0.0 or np.isnan(v) for v in values) and values.count(0.0) >= 5
