"""Membership-inference attacks: hand-computed token log-prob examples per attack, the registry,
and semeval's MIA check switched to Min-K% through the plugin (``--setting mia_attack=min_k``)."""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest

from pytest_unlearn.attacks import ATTACKS, TokenStats, get_attack
from pytest_unlearn.errors import UnlearnError

LOGPROBS = np.array([-1.0, -2.0, -3.0, -4.0, -0.5])


def test_loss_is_the_mean_token_nll():
    assert get_attack("loss").score(TokenStats("x", LOGPROBS)) == pytest.approx(2.1)  # (1+2+3+4+0.5)/5


def test_zlib_divides_the_loss_by_the_compressed_length():
    text = "aaaa"
    assert len(zlib.compress(b"aaaa")) == 12  # 2 header bytes, 6 of deflate, 4 of Adler-32
    assert get_attack("zlib").score(TokenStats(text, LOGPROBS)) == pytest.approx(2.1 / 12)


def test_min_k_averages_the_lowest_k_percent_and_keeps_at_least_one_token():
    attack = get_attack("min_k")
    # k = 0.4 of 5 tokens: int(2.0) = 2 lowest, -4 and -3: score 3.5.
    assert attack.score(TokenStats("x", LOGPROBS)) == pytest.approx(3.5)
    # k = 0.1: int(0.5) = 0, raised to one token: -4.
    assert attack.score(TokenStats("x", LOGPROBS), k=0.1) == pytest.approx(4.0)
    assert attack.score(TokenStats("x", LOGPROBS), k=1.0) == pytest.approx(2.1)


def test_min_k_plus_plus_normalises_by_the_next_token_distribution():
    mu = np.full(5, -1.0)
    sigma2 = np.array([1.0, 4.0, 1.0, 0.0, 1.0])  # 0 is clamped to 1e-6: sigma 1e-3
    # (lp - mu) / sigma = [0, -0.5, -2, -3000, 0.5]; lowest two: -3000 and -2 -> 1501.
    score = get_attack("min_k_plus_plus").score(TokenStats("x", LOGPROBS, mu, sigma2))
    assert score == pytest.approx(1501.0)
    # mu and sigma^2 of a real distribution: p = (0.5, 0.25, 0.25) -> mu = sum p log p.
    p = np.array([0.5, 0.25, 0.25])
    mu1 = float((p * np.log(p)).sum())
    var1 = float((p * np.log(p) ** 2).sum() - mu1**2)
    assert mu1 == pytest.approx(-(0.5 * math.log(2) + 0.5 * math.log(4)))
    one = TokenStats("x", np.array([math.log(0.25)]), np.array([mu1]), np.array([var1]))
    assert get_attack("min_k_plus_plus").score(one) == pytest.approx(-(math.log(0.25) - mu1) / math.sqrt(var1))


def test_registry_lists_the_attacks_and_suggests_on_a_typo():
    assert {"loss", "zlib", "min_k", "min_k_plus_plus"} <= set(ATTACKS.names())
    with pytest.raises(UnlearnError, match=r"--setting mia_attack=mink: Unknown attack 'mink'. Did you mean: min_k\?"):
        get_attack("mink")
    with pytest.raises(UnlearnError, match="at least one scored token"):
        get_attack("min_k").score(TokenStats("x", np.array([])))


def _independent_min_k_auc(model_path, k=0.4):
    """Min-K% AUC of the bundled MIA documents, one document at a time without the plugin."""
    import torch
    from sklearn.metrics import roc_auc_score
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.conftest import REPO

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    scores, labels = [], []
    for name, label in (("member", 1), ("nonmember", 0)):
        for line in (REPO / "suites" / "semeval" / "data" / "mia" / f"{name}.jsonl").read_text().splitlines():
            ids = torch.tensor([tokenizer(json.loads(line)["document"]).input_ids])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0, :-1], -1)
            lp = sorted(logp.gather(-1, ids[0, 1:, None])[:, 0].tolist())
            count = max(1, int(len(lp) * k))
            scores.append(sum(lp[:count]) / count)  # membership score: minus the attack score
            labels.append(label)
    return roc_auc_score(labels, scores)


@pytest.mark.slow
def test_semeval_mia_check_with_min_k(pytester, semeval_models):
    target = semeval_models["target"]
    args = ("-p", "no:cacheprovider", "--suite", "semeval", f"--model={target}", "-k", "mia", "--scorecard=card.json")
    result = pytester.runpytest_inprocess(*args, "--setting", "mia_attack=min_k")
    card = json.loads((pytester.path / "card.json").read_text())
    assert card["settings"]["mia_attack"] == "min_k"
    expected = _independent_min_k_auc(target)
    assert card["aggregates"]["mia_auc"] == pytest.approx(expected, abs=1e-9)
    assert card["aggregates"]["mia_auc"] > 0.9  # the target memorised its members
    rows = [
        json.loads(line) for line in (pytester.path / "card-artifacts" / "mia_losses.jsonl").read_text().splitlines()
    ]
    assert rows[0]["attack"] == "min_k" and "score" in rows[0]
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a memorising model fails the MIA score
    # The default stays LOSS (the official scorer's attack).
    pytester.runpytest_inprocess(*args)
    card = json.loads((pytester.path / "card.json").read_text())
    assert card["settings"]["mia_attack"] == "loss"
    assert "nll" in json.loads((pytester.path / "card-artifacts" / "mia_losses.jsonl").read_text().splitlines()[0])


def test_unknown_attack_is_a_usage_error(pytester, perfect_unlearning_predictions):
    from tests.test_bad_input import usage_error

    line = usage_error(
        pytester, "--suite=semeval", f"--predictions={perfect_unlearning_predictions}", "--setting", "mia_attack=zlb"
    )
    assert line.startswith("ERROR: --setting mia_attack=zlb: Unknown attack 'zlb'. Did you mean: zlib?")
