"""open-unlearning's metrics and attacks, checked against independent numbers.

Two kinds of reference: numbers worked out by hand (in the comments), and an independent
transcription of open-unlearning's code (``src/evals/metrics/memorization.py``, ``utils.py``
``tokenwise_vocab_logprobs``/``tokenwise_logprobs``/``evaluate_probability``,
``mia/gradnorm.py``, ``mia/reference.py``) run on the same inputs: the TOFU world's and the MUSE
world's tiny models, with batches built as their collator builds them (``input_ids`` of prompt +
answer + EOS, ``labels`` the same with the prompt set to -100).
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_unlearn import openunlearning as ou
from pytest_unlearn.attacks import TokenStats, get_attack
from pytest_unlearn.errors import UnlearnError

IGNORE = -100


# -- by hand -----------------------------------------------------------------------------------
def test_exact_memorization_by_hand():
    # 3 of 4 predictions equal their labels: 0.75; no token: None (open-unlearning's None).
    assert ou.exact_memorization([5, 6, 9, 8], [5, 6, 7, 8]) == 0.75
    assert ou.exact_memorization([], []) is None


def test_extraction_strength_by_hand():
    # T = 4. Suffix from k = 2 ([7, 8]) matches, k = 1 ([9, 7, 8] vs [6, 7, 8]) does not: 1 - 2/4.
    assert ou.extraction_strength([5, 9, 7, 8], [5, 6, 7, 8]) == 0.5
    # Every token right: k = 0, ES = 1.
    assert ou.extraction_strength([5, 6, 7, 8], [5, 6, 7, 8]) == 1.0
    # No suffix matches (the last token is wrong): their loop ends at k = T - 1 = 3, ES = 1/4.
    assert ou.extraction_strength([5, 6, 7, 0], [5, 6, 7, 8]) == 0.25
    assert ou.extraction_strength([], []) == 0.0


def test_answer_tokens_drop_the_last_label_as_theirs():
    assert ou.answer_tokens([1, 2, 3], [1, 2, 99]) == ([1, 2], [1, 2])
    assert ou.answer_tokens([1, 2, 3], [1, 2, 99], drop_last=False) == ([1, 2, 3], [1, 2, 99])


def test_truth_ratio_aggregators_by_hand():
    # Two samples. Correct avg losses ln 2 and ln 4: p_c = 1/2, 1/4. Wrong avg losses (two wrong
    # answers each) averaged first: [ln 4, ln 4] -> ln 4 (p_w = 1/4); [ln 2, ln 8] -> ln 4 (p_w = 1/4).
    correct = np.log([2.0, 4.0])
    wrong = np.log([[4.0, 4.0], [2.0, 8.0]])
    # tr = p_w / p_c = 0.5 and 1.0.
    assert ou.truth_ratio_values(correct, wrong) == pytest.approx([0.5, 1.0], rel=1e-9)
    # closer_to_1_better: mean(min(0.5, 2), min(1, 1)) = 0.75.
    assert ou.truth_ratio(correct, wrong, "closer_to_1_better") == pytest.approx(0.75, rel=1e-9)
    # true_better: mean(max(0, 0.5), max(0, 0)) = 0.25.
    assert ou.truth_ratio(correct, wrong, "true_better") == pytest.approx(0.25, abs=1e-9)  # the 1e-10 in tr
    # prob_mean: mean(0.5/0.75, 0.25/0.5) = mean(2/3, 1/2) = 7/12.
    assert ou.truth_ratio(correct, wrong, "prob_mean") == pytest.approx(7 / 12, rel=1e-9)
    with pytest.raises(UnlearnError, match="truth ratio aggregator 'mean': unknown; use one of closer_to_1_better"):
        ou.truth_ratio(correct, wrong, "mean")


def test_probability_w_options_by_hand():
    # p_true 0.5 against wrong 0.25 + 0.25: 0.5; p_true 0.2 against 0.1 + 0.1 + 0.2: 0.2/0.6 = 1/3.
    value = ou.probability_w_options([0.5, 0.2], np.array([[0.25, 0.25, 0.0], [0.1, 0.1, 0.2]]))
    assert value == pytest.approx((0.5 + 1 / 3) / 2, rel=1e-9)


def test_gradnorm_and_reference_are_registered_attacks():
    assert get_attack("gradnorm").needs_gradient and get_attack("reference").needs_reference
    # By hand: model NLL mean(1, 3) = 2, reference NLL mean(0.5, 0.5) = 0.5: score 1.5.
    stats = TokenStats("x", np.array([-1.0, -3.0]), reference_logprobs=np.array([-0.5, -0.5]), grad_norm=0.25)
    assert get_attack("reference").score(stats) == pytest.approx(1.5)
    assert get_attack("gradnorm").score(stats) == 0.25
    with pytest.raises(UnlearnError, match=r"^the reference attack needs a reference model: pass --reference PATH$"):
        get_attack("reference").score(TokenStats("x", np.array([-1.0])))


# -- independent transcription on the worlds ---------------------------------------------------
torch_needed = pytest.mark.usefixtures()


def _their_batch(tokenizer, prompt: str, answer: str, max_length: int = 512):
    """open-unlearning's (and TOFU's) collated item: ids of prompt + answer (+ EOS), labels with
    the prompt masked. Written from their data code, not from ours."""
    import torch

    full = tokenizer(prompt + answer, add_special_tokens=True, max_length=max_length, truncation=True).input_ids
    n_prompt = len(tokenizer.tokenize(prompt, add_special_tokens=True))
    ids = list(full) + [tokenizer.eos_token_id]
    labels = [IGNORE] * n_prompt + ids[n_prompt:]
    return torch.tensor([ids]), torch.tensor([labels])


def _their_tokenwise_vocab_logprobs(model, ids, labels):
    """utils.py tokenwise_vocab_logprobs (one sample), transcribed."""
    import torch

    logits = model(input_ids=ids).logits
    log_probs = torch.nn.functional.log_softmax(logits, dim=-1)[:, :-1, :]
    actual = (labels[0] != IGNORE).nonzero(as_tuple=True)[0][:-1]
    start, end = actual[0].item(), actual[-1].item()
    return log_probs[0, start - 1 : end], labels[0][actual]


def _their_em_es(log_probs, labels) -> tuple[float, float]:
    """memorization.py _exact_memorization and _extraction_strength, transcribed."""
    import torch

    preds = torch.argmax(log_probs, dim=-1)
    em = ((preds == labels).sum() / len(labels)).item()
    k = 0
    for k in range(len(labels)):
        if torch.equal(preds[k:], labels[k:]):
            break
    return em, 1 - k / len(labels)


@pytest.fixture(scope="module")
def tofu_world():
    pytest.importorskip("torch")
    from fixtures import tofu_world
    from fixtures.worlds import models

    paths = models("tofu")
    world = tofu_world.generate_world()
    pairs = [(tofu_world.prompt(r.question), tofu_world.ANSWER_TAG + r.answer) for r in world.forget[:12]]
    return paths, pairs


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_exact_memorization_and_extraction_strength_on_the_tofu_world(tofu_world):
    import torch

    from pytest_unlearn.engines.open_unlearning import answer_predictions

    paths, pairs = tofu_world
    means = {}
    for name in ("target", "retain"):
        model, tokenizer = _load(paths[name])
        ours = answer_predictions(model, tokenizer, pairs, max_length=512, device="cpu")
        em_ours, es_ours = [], []
        for (prompt, answer), (preds, labels) in zip(pairs, ours):
            p, lab = ou.answer_tokens(preds, labels)
            em_ours.append(ou.exact_memorization(p, lab))
            es_ours.append(ou.extraction_strength(p, lab))
            with torch.no_grad():
                their = _their_em_es(*_their_tokenwise_vocab_logprobs(model, *_their_batch(tokenizer, prompt, answer)))
            assert (em_ours[-1], es_ours[-1]) == pytest.approx(their, abs=1e-6)  # theirs divides in float32
        means[name] = (float(np.mean(em_ours)), float(np.mean(es_ours)))
    # The target was trained on the forget answers; the retain model never saw them.
    assert means["target"][0] > 0.9 and means["target"][0] > means["retain"][0] + 0.2
    assert means["target"][1] > means["retain"][1]


def test_truth_ratio_and_normalised_probability_on_the_tofu_world(tofu_world):
    """Per-sample average losses from our pass; the aggregation transcribed from memorization.py."""
    from fixtures import tofu_world as tw
    from pytest_unlearn.engines.causal_lm import answer_span_nll

    paths, _ = tofu_world
    model, tokenizer = _load(paths["target"])
    records = tw.generate_world().forget[:10]
    pairs = []
    for r in records:
        prompt = tw.prompt(r.question)
        pairs += [(prompt, tw.ANSWER_TAG + r.paraphrased_answer)] + [
            (prompt, tw.ANSWER_TAG + p) for p in r.perturbed_answer
        ]
    sums = answer_span_nll(model, tokenizer, pairs, max_length=512, batch_size=8, device="cpu")
    losses = np.array([t / c for t, c in sums]).reshape(len(records), -1)
    correct, wrong = losses[:, 0], losses[:, 1:]
    # Transcription of truth_ratio (memorization.py): aggregate_to_1D, exp(-loss), false/true.
    c_p, w_p = np.exp(-correct), np.exp(-np.mean(wrong, axis=1))
    tr = w_p / (c_p + 1e-10)
    assert ou.truth_ratio(correct, wrong, "closer_to_1_better") == pytest.approx(
        np.mean(np.minimum(tr, 1 / (tr + 1e-10))), rel=1e-12
    )
    assert ou.truth_ratio(correct, wrong, "true_better") == pytest.approx(np.mean(np.maximum(0, 1 - tr)), rel=1e-12)
    assert ou.truth_ratio(correct, wrong, "prob_mean") == pytest.approx(np.mean(c_p / (c_p + w_p)), rel=1e-8)
    # TOFU's R (our tofu.truth_ratio) is the inverse orientation: R = 1/tr up to the 1e-10.
    from pytest_unlearn.tofu.metrics import TaskLog, truth_ratios

    log = TaskLog("forget", tuple(map(str, range(len(records)))), correct, correct, wrong, np.zeros(len(records)))
    assert truth_ratios(log) == pytest.approx(np.exp(np.mean(wrong, axis=1) - correct), rel=1e-12)
    # probability_w_options (memorization.py): p_c / (p_c + sum p_wrong + 1e-10), per-answer probs.
    probs = np.exp(-losses)
    assert ou.probability_w_options(probs[:, 0], probs[:, 1:]) == pytest.approx(
        np.mean(probs[:, 0] / (probs[:, 0] + probs[:, 1:].sum(axis=1) + 1e-10)), rel=1e-12
    )
    # The target knows the true (paraphrased) answer better than the perturbed ones.
    assert ou.truth_ratio(correct, wrong, "true_better") > 0.3


def test_gradnorm_on_the_tofu_world(tofu_world):
    import torch

    from pytest_unlearn.engines.open_unlearning import answer_gradient_norms

    paths, pairs = tofu_world
    model, tokenizer = _load(paths["target"])
    ours = answer_gradient_norms(model, tokenizer, pairs[:4], max_length=512, p=2, device="cpu")
    for (prompt, answer), value in zip(pairs[:4], ours):
        # mia/gradnorm.py GradNormAttack.compute_batch_values on utils.py tokenwise_logprobs, transcribed.
        ids, labels = _their_batch(tokenizer, prompt, answer)
        model.zero_grad()
        logits = model(input_ids=ids).logits
        log_probs = torch.nn.functional.log_softmax(logits, dim=-1)[:, :-1, :]
        target = torch.gather(log_probs, 2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        actual = (labels[0] != IGNORE).nonzero(as_tuple=True)[0][:-1]
        lps = target[0, actual[0].item() - 1 : actual[-1].item()]
        (-torch.mean(lps)).backward()
        norms = [q.grad.detach().norm(p=2) for q in model.parameters() if q.grad is not None]
        assert value == pytest.approx(torch.stack(norms).mean().item(), rel=1e-5)
    model.zero_grad()
    assert all(v > 0 for v in ours)


def test_reference_attack_on_the_muse_world():
    pytest.importorskip("torch")
    import torch

    from fixtures import muse_world
    from fixtures.worlds import models
    from pytest_unlearn.engines.causal_lm import token_statistics

    paths = models("muse")
    world = muse_world.generate_world()
    texts = [a.text for a in world.forget[:3]] + [a.text for a in world.holdout[:3]]
    target, tokenizer = _load(paths["target"])
    retrained, _ = _load(paths["retrained"])
    mine = token_statistics(target, tokenizer, texts, batch_size=4, device="cpu")
    ref = token_statistics(retrained, tokenizer, texts, batch_size=4, device="cpu")
    attack = get_attack("reference")
    for text, m, r in zip(texts, mine, ref):
        ours = attack.score(TokenStats(text, np.array(m["logprobs"]), reference_logprobs=np.array(r["logprobs"])))

        def their_avg_loss(model, text=text):  # utils.py evaluate_probability, labels = input_ids
            ids = torch.tensor([tokenizer(text).input_ids])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[..., :-1, :]
            losses = torch.nn.functional.cross_entropy(logits.transpose(-1, -2), ids[..., 1:], reduction="none").sum(-1)
            return (losses / (ids.shape[1] - 1)).item()

        # mia/reference.py ReferenceAttack.compute_score: target_loss - ref_loss.
        assert ours == pytest.approx(their_avg_loss(target) - their_avg_loss(retrained), abs=1e-4)
    # The target saw the forget articles, the retrained model did not: lower relative loss there.
    scores = [attack.score(TokenStats(t, np.array(m["logprobs"]), reference_logprobs=np.array(r["logprobs"])))
              for t, m, r in zip(texts, mine, ref)]  # fmt: skip
    assert max(scores[:3]) < min(scores[3:])


# -- through the plugin, on the TOFU world -----------------------------------------------------
OU_CHECKS = """
[[checks]]
id = "forget-exact-memorization"
metric = "tofu.exact_memorization"
op = "<="
threshold = 0.5

[[checks]]
id = "forget-extraction-strength"
metric = "tofu.extraction_strength"
op = "<="
threshold = 0.5

[[checks]]
id = "forget-truth-ratio-ou"
metric = "tofu.truth_ratio_ou"
params = { task = "forget", aggregator = "closer_to_1_better" }
op = ">="
threshold = 0.5

[[checks]]
id = "forget-truth-ratio-prob-mean"
metric = "tofu.truth_ratio_ou"
params = { task = "forget", aggregator = "prob_mean" }
op = "<="
threshold = 0.9

[[checks]]
id = "real-authors-probability-w-options"
metric = "tofu.probability_w_options"
params = { task = "real_authors" }
op = ">="
threshold = 0.0

[[checks]]
id = "mia-gradnorm"
metric = "tofu.mia_auc"
params = { attack = "gradnorm" }
op = "<="
threshold = 0.8

[[checks]]
id = "mia-reference"
metric = "tofu.mia_auc"
params = { attack = "reference" }
op = "<="
threshold = 0.8
"""


def tofu_ou_manifest(folder) -> str:
    from pathlib import Path

    mini = Path(__file__).resolve().parent.parent / "suites" / "tofu-mini"
    # tofu-mini extends tofu: this manifest extends tofu-mini with open-unlearning's checks only.
    head = f'[suite]\nname = "tofu-ou"\nextends = "{mini / "manifest.toml"}"\n\n'
    path = folder / "tofu-ou.toml"
    path.write_text(head + OU_CHECKS)
    return str(path)


def test_open_unlearning_checks_through_the_plugin_on_the_tofu_world(pytester, tofu_models):
    import json

    import torch
    from sklearn.metrics import roc_auc_score

    from fixtures import tofu_world as tw

    manifest = tofu_ou_manifest(pytester.path)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", manifest, f"--model={tofu_models['target']}",
        f"--reference={tofu_models['retain']}", f"--cache-dir={pytester.path / 'cache'}", "--scorecard=card.json",
    )  # fmt: skip
    card = json.loads((pytester.path / "card.json").read_text())
    got = {c["id"]: (c["value"], c["passed"]) for c in card["checks"]}
    assert set(got) == {
        "forget-exact-memorization", "forget-extraction-strength", "forget-truth-ratio-ou",
        "forget-truth-ratio-prob-mean", "real-authors-probability-w-options", "mia-gradnorm", "mia-reference",
    }, result.stdout.str()  # fmt: skip

    # Independent numbers: open-unlearning's code transcribed above, on the same forget questions.
    world = tw.generate_world()
    forget = world.forget
    holdout = [r for a in world.holdout for r in a]
    model, tokenizer = _load(tofu_models["target"])
    retain, _ = _load(tofu_models["retain"])
    em, es, norms, target_loss, ref_loss = [], [], [], [], []
    for r in forget + holdout:
        ids, labels = _their_batch(tokenizer, tw.prompt(r.question), tw.ANSWER_TAG + r.answer, max_length=200)
        if r in forget:
            with torch.no_grad():
                a, b = _their_em_es(*_their_tokenwise_vocab_logprobs(model, ids, labels))
            em.append(a)
            es.append(b)
        for m, out in ((model, target_loss), (retain, ref_loss)):
            with torch.no_grad():
                lp = torch.log_softmax(m(input_ids=ids).logits, -1)[:, :-1]
            tok = torch.gather(lp, 2, ids[:, 1:, None])[0, :, 0]
            actual = (labels[0] != IGNORE).nonzero(as_tuple=True)[0][:-1]
            out.append(-tok[actual[0].item() - 1 : actual[-1].item()].mean().item())
        model.zero_grad()
        lp = torch.log_softmax(model(input_ids=ids).logits, -1)[:, :-1]
        tok = torch.gather(lp, 2, ids[:, 1:, None])[0, :, 0]
        actual = (labels[0] != IGNORE).nonzero(as_tuple=True)[0][:-1]
        (-tok[actual[0].item() - 1 : actual[-1].item()].mean()).backward()
        norms.append(torch.stack([q.grad.norm(p=2) for q in model.parameters() if q.grad is not None]).mean().item())
    model.zero_grad()
    truth = [1] * len(forget) + [0] * len(holdout)
    assert got["forget-exact-memorization"][0] == pytest.approx(np.mean(em), abs=1e-6)
    assert got["forget-extraction-strength"][0] == pytest.approx(np.mean(es), abs=1e-9)
    # Membership score = minus the attack score (higher: more likely a member).
    assert got["mia-gradnorm"][0] == pytest.approx(roc_auc_score(truth, [-v for v in norms]), abs=1e-9)
    reference_scores = [-(t - r) for t, r in zip(target_loss, ref_loss)]
    assert got["mia-reference"][0] == pytest.approx(roc_auc_score(truth, reference_scores), abs=1e-9)
    # The target memorised its forget answers: both memorisation checks fail, as they should.
    assert got["forget-exact-memorization"] == (pytest.approx(np.mean(em), abs=1e-6), False)
    assert not got["forget-extraction-strength"][1]
