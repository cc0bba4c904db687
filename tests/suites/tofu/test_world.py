"""The TOFU suite discriminates, through the real plugin, on the miniature TOFU world.

- target (trained on every author): forget quality ~1e-5 (fails), model utility as the retain model's;
- retain checked against itself: forget quality exactly 1.0;
- retain2 (the same recipe, another seed): passes every check;
- over_unlearned (gradient ascent on the forget set): fails model utility.
Our artifacts are themselves valid --predictions / --reference input giving the same scorecard.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One artifact cache for the module: the retain model, everyone's reference, is scored once.
    return tmp_path_factory.mktemp("tofu-cache")


def run_suite(pytester: pytest.Pytester, cache_dir: Path, *args: str) -> tuple[int, dict]:
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite",
        "tofu-mini",
        "--batch-size=64",
        f"--cache-dir={cache_dir}",
        "--scorecard=card.json",
        *args,
    )
    return int(result.ret), json.loads((pytester.path / "card.json").read_text())


def verdicts(card: dict) -> dict[str, bool]:
    return {check["id"]: check["passed"] for check in card["checks"]}


def values(card: dict) -> dict[str, float]:
    return {check["id"]: check["value"] for check in card["checks"]}


def test_target_fails_forget_quality_and_its_logs_score_the_same(pytester, tofu_models, cache_dir):
    code, card = run_suite(
        pytester, cache_dir, f"--model={tofu_models['target']}", f"--reference={tofu_models['retain']}"
    )
    assert code == pytest.ExitCode.TESTS_FAILED
    assert verdicts(card) == {
        "forget-quality": False,
        "model-utility-ratio": True,
        "forget-rouge": False,
        "forget-probability": False,
    }
    # Every forget truth ratio of the target lies beyond the retain model's: D = 1 and, for
    # n = m = 10, the exact two-sided p-value 2 / C(20, 10).
    assert card["aggregates"]["ks_statistic"] == 1.0
    assert card["aggregates"]["forget_quality"] == pytest.approx(2 / math.comb(20, 10))
    assert len(card["aggregates"]["details"]) == 12
    logs = pytester.path / card["artifacts"]["tofu_logs"]
    reference_logs = pytester.path / card["artifacts"]["tofu_reference_logs"]
    first = card

    # The logs we wrote, as TOFU's eval_log_aggregated.json, give the same scorecard without a model.
    (pytester.path / "card.json").unlink()
    code, card = run_suite(pytester, cache_dir, f"--predictions={logs}", f"--reference={reference_logs}")
    assert code == pytest.ExitCode.TESTS_FAILED
    assert values(card) == values(first)
    assert [c["ci95"] for c in card["checks"]] == [c["ci95"] for c in first["checks"]]
    assert card["aggregates"] == first["aggregates"]


def test_retain_against_itself_has_forget_quality_one(pytester, tofu_models, cache_dir):
    code, card = run_suite(
        pytester, cache_dir, f"--model={tofu_models['retain']}", f"--reference={tofu_models['retain']}"
    )
    assert code == pytest.ExitCode.OK
    assert card["aggregates"]["forget_quality"] == 1.0
    assert card["aggregates"]["ks_statistic"] == 0.0
    assert values(card)["model-utility-ratio"] == 1.0


def test_independent_retain_model_passes_every_check(pytester, tofu_models, cache_dir):
    # The retain model's scorecard, with its per-sample logs, serves as the reference.
    code, ref_card = run_suite(pytester, cache_dir, f"--model={tofu_models['retain']}")
    ref_scorecard = pytester.path / "retain-card.json"
    (pytester.path / "card.json").rename(ref_scorecard)
    assert [c["error"] for c in ref_card["checks"] if c["id"] == "forget-quality"][0].startswith(
        "forget quality needs the retain model: pass --reference PATH"
    )
    code, card = run_suite(pytester, cache_dir, f"--model={tofu_models['retain2']}", f"--reference={ref_scorecard}")
    assert code == pytest.ExitCode.OK, verdicts(card)
    assert card["aggregates"]["forget_quality"] > 0.05
    assert 0.8 < values(card)["model-utility-ratio"] < 1.25


def test_over_unlearned_model_fails_model_utility(pytester, tofu_models, cache_dir):
    code, card = run_suite(
        pytester, cache_dir, f"--model={tofu_models['over_unlearned']}", f"--reference={tofu_models['retain']}"
    )
    assert code == pytest.ExitCode.TESTS_FAILED
    assert not verdicts(card)["model-utility-ratio"]
    assert card["aggregates"]["model_utility"] < 0.1 * card["aggregates"]["reference_model_utility"]


def _tofu_reference_losses(model, tokenizer, pairs, max_length):
    """locuslab/tofu's own path, transcribed: convert_raw_data_to_model_format (right padding to
    max_length with eos, labels -100 on the question and after the eos) and get_batch_loss, one
    example at a time; avg loss = summed loss / number of labels."""
    import torch
    from torch import nn

    out = []
    for question, answer in pairs:
        num_question_tokens = len(tokenizer.tokenize(question, add_special_tokens=True))
        encoded = tokenizer(question + answer, add_special_tokens=True, max_length=max_length, truncation=True)
        pad_length = max_length - len(encoded.input_ids)
        pad_input_ids = encoded["input_ids"] + [tokenizer.eos_token_id] * pad_length
        pad_attention_mask = encoded["attention_mask"] + [0] * pad_length
        if len(encoded.input_ids) == max_length:
            label = list(encoded.input_ids)
        else:
            label = encoded["input_ids"] + [tokenizer.eos_token_id] + [-100] * (pad_length - 1)
        for i in range(num_question_tokens):
            label[i] = -100
        ids, labels = torch.tensor([pad_input_ids]), torch.tensor([label])
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.tensor([pad_attention_mask])).logits
        shifted = labels[..., 1:]
        loss = nn.CrossEntropyLoss(ignore_index=-100, reduction="none")(logits[..., :-1, :].transpose(-1, -2), shifted)
        out.append(float(loss.sum(-1)) / int((labels != -100).sum()))
    return out


def test_batched_answer_losses_equal_tofus_one_at_a_time_losses(tofu_models):
    from fixtures.tofu_world import ANSWER_TAG, generate_world, prompt
    from pytest_unlearn.engines.causal_lm import answer_span_nll
    from pytest_unlearn.loading import load_causal_lm

    model, tokenizer, _ = load_causal_lm(tofu_models["target"], device="cpu", dtype="float32", allow_pickle=False)
    world = generate_world()
    records = world.forget[:4] + world.real_authors[:3]
    pairs = [(prompt(r.question), ANSWER_TAG + a) for r in records for a in (r.answer, r.perturbed_answer[0])]
    for max_length in (64, 16):  # 16 truncates the author answers (no eos label then), not the others
        expected = _tofu_reference_losses(model, tokenizer, pairs, max_length)
        ours = answer_span_nll(model, tokenizer, pairs, max_length=max_length, batch_size=5, device="cpu")
        assert [total / count for total, count in ours] == pytest.approx(expected, rel=1e-5, abs=1e-6)
        # Answers to one question run it once (its key/value cache), forced here on every group
        # whatever share of tokens it saves: the same sums, the same counts.
        shared = answer_span_nll(
            model, tokenizer, pairs, max_length=max_length, batch_size=5, device="cpu", min_shared_fraction=0.0
        )
        unshared = answer_span_nll(
            model, tokenizer, pairs, max_length=max_length, batch_size=5, device="cpu", share_prompts=False
        )
        assert [count for _, count in shared] == [count for _, count in unshared]
        assert [total for total, _ in shared] == pytest.approx([total for total, _ in unshared], rel=1e-6, abs=1e-5)


def test_answers_to_one_question_share_its_tokens_up_to_their_first_scored_position(tofu_models):
    from fixtures.tofu_world import ANSWER_TAG, generate_world, prompt
    from pytest_unlearn.engines.causal_lm import answer_span_encoding, shared_prompt_groups
    from pytest_unlearn.loading import load_causal_lm

    _, tokenizer, _ = load_causal_lm(tofu_models["target"], device="cpu", dtype="float32", allow_pickle=False)
    record = generate_world().forget[0]
    answers = [record.answer, *record.perturbed_answer]
    pairs = [(prompt(record.question), ANSWER_TAG + a) for a in answers] + [
        ("Q: short?", " A: yes"),
        ("Q: short?", " no"),
    ]
    encoded = [answer_span_encoding(tokenizer, p, a, 64) for p, a in pairs]
    n_prompt = encoded[0][1]
    # The question's group shares every token before the one that predicts the first answer
    # token (n_prompt - 1 of them); the short prompt's two answers share too few to bother.
    group = (n_prompt - 1, list(range(len(answers))))
    assert shared_prompt_groups(pairs, encoded, min_fraction=0.0) == [group]
    assert all(seq[: n_prompt - 1] == encoded[0][0][: n_prompt - 1] for seq, _ in encoded[: len(answers)])
    # By default a group shares its prompt only when that saves 40% of its tokens (by hand here).
    saved = (n_prompt - 1) * (len(answers) - 1)
    tokens = sum(len(seq) for seq, _ in encoded[: len(answers)])
    assert shared_prompt_groups(pairs, encoded) == ([group] if saved >= 0.4 * tokens else [])
    assert shared_prompt_groups(pairs, encoded, min_fraction=saved / tokens) == [group]
    assert shared_prompt_groups(pairs, encoded, min_fraction=saved / tokens + 0.01) == []


def test_warm_rerun_loads_no_model(tofu_models, cache_dir, tmp_path):
    from pytest_unlearn.evaluation import RunSettings, create_backend
    from pytest_unlearn.manifest import resolve_suite

    def run() -> tuple[int, dict]:
        settings = RunSettings(
            model=tofu_models["retain2"],
            reference=tofu_models["retain"],
            artifacts=tmp_path / "artifacts",
            device="cpu",
            batch_size=64,
            cache_dir=cache_dir,
        )
        backend = create_backend(resolve_suite("tofu-mini"), settings)
        backend.ensure(("tofu", "reference"))
        return backend.model_loads, backend.aggregates()

    # The module's earlier tests scored both models through this cache (or this first run does).
    run()
    loads, aggregates = run()
    assert loads == 0
    assert aggregates["forget_quality"] > 0.05


def _independent_min_k_auc(model_path: Path, k: float = 0.4) -> float:
    """open-unlearning's Min-K% on forget vs holdout answers, one example at a time without the
    plugin: log-probs of the answer tokens (the end-of-sequence label dropped), the lowest k %."""
    import torch
    from sklearn.metrics import roc_auc_score
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fixtures.tofu_world import ANSWER_TAG, generate_world, prompt

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    world = generate_world()
    scores, labels = [], []
    for records, label in ((world.forget, 1), ([r for a in world.holdout for r in a], 0)):
        for r in records:
            n_prompt = len(tokenizer(prompt(r.question)).input_ids)
            ids = tokenizer(prompt(r.question) + ANSWER_TAG + r.answer).input_ids
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
            lp = sorted(logp[j - 1, ids[j]].item() for j in range(n_prompt, len(ids)))
            count = max(1, int(len(lp) * k))
            scores.append(sum(lp[:count]) / count)
            labels.append(label)
    return float(roc_auc_score(labels, scores))


def test_mia_check_on_forget_against_holdout(pytester, tofu_models, cache_dir):
    from tests.conftest import REPO

    text = (REPO / "suites" / "tofu-mini" / "manifest.toml").read_text()
    text = text.replace('tofu = "data"', f'tofu = "{REPO / "suites" / "tofu-mini" / "data"}"')
    text += '\n[[checks]]\nid = "forget-mia-min-k"\nmetric = "tofu.mia_auc"\nparams = { attack = "min_k" }\nop = "<="\nthreshold = 0.75\n'
    manifest = pytester.path / "tofu-mia.toml"
    manifest.write_text(text)

    def run(model: Path) -> dict:
        pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", f"--suite={manifest}", f"--model={model}", "-k", "mia",
            "--batch-size=64", f"--cache-dir={cache_dir}", "--scorecard=card.json",
        )  # fmt: skip
        return json.loads((pytester.path / "card.json").read_text())

    target = run(tofu_models["target"])
    auc = values(target)["forget-mia-min-k"]
    assert auc == pytest.approx(_independent_min_k_auc(tofu_models["target"]), abs=1e-9)
    assert auc > 0.9 and not verdicts(target)["forget-mia-min-k"]
    assert set(target["aggregates"]["mia_auc"]) == {"loss", "zlib", "min_k", "min_k_plus_plus"}
    retain = run(tofu_models["retain"])
    assert verdicts(retain)["forget-mia-min-k"], values(retain)
