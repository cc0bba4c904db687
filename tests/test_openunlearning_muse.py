"""open-unlearning's MUSE metrics and result files on the MUSE world (and its metrics and attacks in
semeval's checks on the semeval world), checked against an
independent transcription of their code (``src/data/utils.py`` ``preprocess_pretraining_instance``,
``src/evals/metrics/utils.py`` ``tokenwise_vocab_logprobs``, ``memorization.py``) run on the same
passages, and their ``MUSE_EVAL.json`` layout written and read back through the real plugin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

IGNORE = -100
MINI = Path(__file__).resolve().parent.parent / "suites" / "muse-mini"

OU_CHECKS = """
[suite]
name = "muse-ou"
extends = "{mini}"

[[checks]]
id = "verbmem-exact-memorization"
metric = "muse.exact_memorization"
op = "<="
threshold = 0.5

[[checks]]
id = "verbmem-extraction-strength"
metric = "muse.extraction_strength"
op = "<="
threshold = 0.5
"""


def _manifest(folder: Path, checks: str = OU_CHECKS) -> str:
    path = folder / "muse-ou.toml"
    path.write_text(checks.format(mini=MINI / "manifest.toml"))
    return str(path)


def _their_completion_item(tokenizer, prefix: str, text: str, max_length: int = 2048):
    """``preprocess_pretraining_instance(tokenizer, prefix, text, max_length, False, insert_space=True)``
    as open-unlearning's ``CompletionDataset`` calls it for ``MUSE_forget_verbmem``, transcribed."""
    import torch

    full_seq_ids = tokenizer(prefix + " " + text, add_special_tokens=True)["input_ids"]
    prefix_len = len(tokenizer(prefix, add_special_tokens=True)["input_ids"])
    full_seq_ids = full_seq_ids[: prefix_len + max_length]
    len_matched = prefix_len if prefix_len else 1
    labels = [IGNORE] * len_matched + full_seq_ids[len_matched:]
    return torch.tensor([full_seq_ids]), torch.tensor([labels])


def _their_em_es(model, ids, labels) -> tuple[float, float]:
    """``tokenwise_vocab_logprobs`` then ``_exact_memorization`` / ``_extraction_strength``."""
    import torch

    with torch.no_grad():
        log_probs = torch.nn.functional.log_softmax(model(input_ids=ids).logits, dim=-1)[:, :-1, :]
    actual = (labels[0] != IGNORE).nonzero(as_tuple=True)[0][:-1]
    start, end = actual[0].item(), actual[-1].item()
    lp, lab = log_probs[0, start - 1 : end], labels[0][actual]
    return _their_scores(torch.argmax(lp, dim=-1), lab)


def _their_scores(preds, labels) -> tuple[float, float]:
    """``memorization.py`` ``_exact_memorization`` and ``_extraction_strength``, transcribed."""
    import torch

    em = ((preds == labels).sum() / len(labels)).item()
    k = 0
    for k in range(len(labels)):
        if torch.equal(preds[k:], labels[k:]):
            break
    return em, 1 - k / len(labels)


def _run(pytester, manifest: str, *args: str):
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", manifest, f"--cache-dir={pytester.path / 'cache'}",
        "--scorecard=card.json", *args,
    )  # fmt: skip
    card = json.loads((pytester.path / "card.json").read_text())
    return result, {c["id"]: (c["value"], c["passed"]) for c in card["checks"]}


def test_exact_memorization_and_extraction_strength_through_the_plugin_on_the_muse_world(pytester, muse_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pytest_unlearn.muse.data import load_data

    passages = load_data(MINI / "data", "news", "--data", lambda message: None).verbmem
    manifest = _manifest(pytester.path)
    values = {}
    for name in ("target", "retrained"):
        result, got = _run(pytester, manifest, f"--model={muse_models[name]}")
        assert set(got) == {"verbmem-exact-memorization", "verbmem-extraction-strength"}, result.stdout.str()
        model = AutoModelForCausalLM.from_pretrained(muse_models[name]).eval()
        tokenizer = AutoTokenizer.from_pretrained(muse_models[name])
        em, es = zip(*(_their_em_es(model, *_their_completion_item(tokenizer, p.prompt, p.gt)) for p in passages))
        assert got["verbmem-exact-memorization"][0] == pytest.approx(np.mean(em), abs=1e-6)
        assert got["verbmem-extraction-strength"][0] == pytest.approx(np.mean(es), abs=1e-9)
        values[name] = got
    # The target was trained on the forget articles and reproduces them; the retrained model not.
    assert values["target"]["verbmem-exact-memorization"][0] > 0.9
    assert not values["target"]["verbmem-exact-memorization"][1]
    assert not values["target"]["verbmem-extraction-strength"][1]
    assert values["retrained"]["verbmem-exact-memorization"][0] < values["target"]["verbmem-exact-memorization"][0]


# -- muse.mia_auc: every attack of the registry on MUSE's forget and holdout texts ------------------
MIA_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus", "gradnorm", "reference")
MIA_CHECKS = "".join(
    f'\n[[checks]]\nid = "mia-{a}"\nmetric = "muse.mia_auc"\nparams = {{{{ attack = "{a}" }}}}\nop = "<="\n'
    "threshold = 0.75\n"
    for a in MIA_ATTACKS
)


def _their_mia_scores(model, ref, tokenizer, text: str) -> dict[str, float]:
    """open-unlearning's per-sample attack scores (``mia/loss.py``, ``zlib.py``, ``min_k.py``,
    ``min_k_plus_plus.py``, ``gradnorm.py``, ``reference.py``) for one text scored whole,
    transcribed and run without the plugin: higher is less member-like."""
    import zlib

    import torch

    ids = torch.tensor([tokenizer(text).input_ids])
    model.zero_grad()
    logits = model(input_ids=ids).logits[0, :-1].float()
    logp = torch.log_softmax(logits, -1)
    target = logp.gather(-1, ids[0, 1:, None])[:, 0]
    (-target.mean()).backward()
    norms = [q.grad.norm(p=2) for q in model.parameters() if q.grad is not None]
    model.zero_grad()
    lp = target.detach().double().numpy()
    loss = float(-lp.mean())
    count = max(1, int(len(lp) * 0.4))
    probs = torch.softmax(logits.detach().double(), -1)
    mu = (probs * logp.detach().double()).sum(-1)
    sigma = ((probs * logp.detach().double() ** 2).sum(-1) - mu**2).clamp(min=1e-6).sqrt()
    normed = ((torch.from_numpy(lp) - mu) / sigma).numpy()
    with torch.no_grad():
        ref_loss = float(ref(input_ids=ids, labels=ids).loss)
    return {
        "loss": loss,
        "zlib": loss / len(zlib.compress(text.encode("utf-8"))),
        "min_k": float(-np.sort(lp)[:count].mean()),
        "min_k_plus_plus": float(-np.sort(normed)[:count].mean()),
        "gradnorm": float(torch.stack(norms).mean()),
        "reference": loss - ref_loss,
    }


def test_muse_mia_auc_with_every_attack_through_the_plugin(pytester, muse_models):
    import torch
    from sklearn.metrics import roc_auc_score
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pytest_unlearn.muse.data import load_data

    manifest = _manifest(pytester.path, OU_CHECKS.split("[[checks]]")[0] + MIA_CHECKS)
    target, retrained = muse_models["target"], muse_models["retrained"]
    result, got = _run(
        pytester, manifest, f"--model={target}", f"--reference={retrained}", "--setting=write_openunlearning=true"
    )
    assert set(got) == {f"mia-{a}" for a in MIA_ATTACKS}, result.stdout.str()
    sets = load_data(MINI / "data", "news", "--data", lambda message: None).privleak
    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).eval()
    ref = AutoModelForCausalLM.from_pretrained(retrained, dtype=torch.float32).eval()
    theirs = [_their_mia_scores(model, ref, tokenizer, t) for t in sets["forget"] + sets["holdout"]]
    labels = [1] * len(sets["forget"]) + [0] * len(sets["holdout"])
    for attack in MIA_ATTACKS:
        # mia/utils.py mia_auc with the forget texts as members: AUC over minus the scores.
        expected = roc_auc_score(labels, [-row[attack] for row in theirs])
        assert got[f"mia-{attack}"][0] == pytest.approx(expected, abs=1e-9), attack
    # The target was trained on the forget articles: the loss attack tells them from the holdout.
    assert got["mia-loss"][0] > 0.9 and not got["mia-loss"][1]
    # Written as open-unlearning's mia_* entries (forget 0, holdout 1, the score as it is: the
    # same number), and read back as --predictions without a model: the same six values.
    card = json.loads((pytester.path / "card.json").read_text())
    evals = json.loads(Path(card["artifacts"]["openunlearning_eval"]).read_text())
    for attack in MIA_ATTACKS:
        entry = evals[f"mia_{attack}"]
        forget = [v["score"] for v in entry["forget"]["value_by_index"].values()]
        holdout = [v["score"] for v in entry["holdout"]["value_by_index"].values()]
        pairs = [(f, h) for f in forget for h in holdout]
        by_hand = sum(1.0 if h > f else 0.5 if h == f else 0.0 for f, h in pairs) / len(pairs)
        assert entry["auc"] == pytest.approx(by_hand, abs=1e-12) == got[f"mia-{attack}"][0]
    result, again = _run(pytester, manifest, f"--predictions={card['artifacts']['openunlearning_eval']}")
    assert {k: v[0] for k, v in again.items()} == pytest.approx({k: v[0] for k, v in got.items()}, abs=1e-12)


def test_muse_mia_auc_refuses_what_it_cannot_run_in_one_line(pytester, muse_models, tmp_path):
    from tests.test_bad_input import usage_error

    reference_check = (
        OU_CHECKS.split("[[checks]]")[0]
        + MIA_CHECKS.split("[[checks]]")[0]
        + "[[checks]]"
        + (MIA_CHECKS.split("[[checks]]")[-1])
    )
    manifest = _manifest(tmp_path, reference_check)
    line = usage_error(pytester, "--suite", manifest, f"--model={muse_models['target']}")
    assert line == "ERROR: the reference attack needs a reference model: pass --reference PATH (a model folder)"
    bad = _manifest(tmp_path, reference_check.replace('attack = "reference"', 'attack = "refrence"'))
    line = usage_error(pytester, "--suite", bad, f"--model={muse_models['target']}")
    assert line.startswith(
        "ERROR: check mia-reference: attack=refrence: Unknown attack 'refrence'. Did you mean: reference?"
    )
    # Without a model, the file must hold the attack's per-sample scores.
    evals = tmp_path / "MUSE_EVAL.json"
    evals.write_text(json.dumps({"mia_loss": {"forget": {"value_by_index": {"0": {"score": 1.0}}},
                                              "holdout": {"value_by_index": {"0": {"score": 2.0}}}}}))  # fmt: skip
    manifest = _manifest(tmp_path, reference_check)
    line = usage_error(pytester, "--suite", manifest, f"--predictions={evals}")
    assert line == (
        "ERROR: check mia-reference (muse.mia_auc, reference) scores the model's token log-probs: pass --model PATH, "
        "or a MUSE_EVAL.json with its mia_reference as --predictions"
    )


# -- semeval: exact memorization and extraction strength of the expected outputs ----------------
SEMEVAL_MEMORIZATION = """
[suite]
name = "semeval-mem"
extends = "{semeval}"

[[checks]]
id = "forget-exact-memorization"
metric = "semeval.exact_memorization"
params = {{ split = "forget" }}
op = "<="
threshold = 0.5

[[checks]]
id = "forget-extraction-strength"
metric = "semeval.extraction_strength"
params = {{ split = "forget" }}
op = "<="
threshold = 0.5

[[checks]]
id = "retain-task2-exact-memorization"
metric = "semeval.exact_memorization"
params = {{ split = "retain", task = "Task2" }}
op = ">="
threshold = 0.5
"""


def _their_semeval_em_es(model, tokenizer, prompt: str, answer: str) -> tuple[float, float]:
    """open-unlearning's exact memorization and extraction strength of one (input, output) pair,
    transcribed: the whole text tokenized with special tokens, the input's own length marks
    where the labels start, one teacher-forced pass, the last label (EOS) dropped as
    ``tokenwise_vocab_logprobs`` drops it."""
    import torch

    full = tokenizer(prompt + answer, add_special_tokens=True).input_ids
    start = len(tokenizer(prompt, add_special_tokens=True).input_ids)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full])).logits[0]
    return _their_scores(logits[start - 1 : len(full) - 1].argmax(-1), torch.tensor(full[start:]))


def test_semeval_exact_memorization_and_extraction_strength_through_the_plugin(pytester, semeval_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.conftest import REPO

    path = pytester.path / "semeval-mem.toml"
    path.write_text(SEMEVAL_MEMORIZATION.format(semeval=REPO / "suites" / "semeval" / "manifest.toml"))
    rows = {
        split: [
            json.loads(x) for x in (REPO / "suites" / "semeval" / "data" / f"{split}.jsonl").read_text().splitlines()
        ]
        for split in ("forget", "retain")
    }
    values = {}
    for name in ("target", "retrained"):
        result, got = _run(pytester, str(path), f"--model={semeval_models[name]}")
        assert set(got) == {"forget-exact-memorization", "forget-extraction-strength",
                            "retain-task2-exact-memorization"}, result.stdout.str()  # fmt: skip
        model = AutoModelForCausalLM.from_pretrained(semeval_models[name]).eval()
        tokenizer = AutoTokenizer.from_pretrained(semeval_models[name])
        forget = [_their_semeval_em_es(model, tokenizer, r["input"], r["output"]) for r in rows["forget"]]
        retain = [
            _their_semeval_em_es(model, tokenizer, r["input"], r["output"])[0]
            for r in rows["retain"]
            if r["task"] == "Task2"
        ]
        assert got["forget-exact-memorization"][0] == pytest.approx(np.mean([em for em, _ in forget]), abs=1e-9)
        assert got["forget-extraction-strength"][0] == pytest.approx(np.mean([es for _, es in forget]), abs=1e-9)
        assert got["retain-task2-exact-memorization"][0] == pytest.approx(np.mean(retain), abs=1e-9)
        values[name] = got
    # The target memorised its forget outputs; the retrained model never saw them; both keep retain.
    assert (
        values["target"]["forget-exact-memorization"][0] > 0.9 and not values["target"]["forget-exact-memorization"][1]
    )
    assert values["retrained"]["forget-exact-memorization"][0] < values["target"]["forget-exact-memorization"][0]
    assert values["retrained"]["retain-task2-exact-memorization"][1]


def test_semeval_memorization_checks_need_the_model(pytester, perfect_unlearning_predictions, tmp_path):
    from tests.conftest import REPO
    from tests.test_bad_input import usage_error

    path = tmp_path / "semeval-mem.toml"
    path.write_text(SEMEVAL_MEMORIZATION.format(semeval=REPO / "suites" / "semeval" / "manifest.toml"))
    line = usage_error(pytester, "--suite", str(path), f"--predictions={perfect_unlearning_predictions}")
    assert line == (
        "ERROR: check forget-exact-memorization (open-unlearning's memorization) reads the model's next-token "
        "predictions: pass --model PATH (a predictions file holds generations only)"
    )


# -- semeval's MIA check with open-unlearning's gradnorm and reference attacks ---------------------
def _their_semeval_attack_scores(target, reference=None, p=2.0):
    """Per MIA document (members then nonmembers), open-unlearning's score, transcribed and run
    one document at a time without the plugin: ``mia/gradnorm.py`` GradNormAttack (the loss over
    every token after the first, backward, the mean over parameters of the p-norm of each
    gradient) or ``mia/reference.py`` ReferenceAttack (target loss minus reference loss)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.conftest import REPO

    tokenizer = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target, torch_dtype=torch.float32).eval()
    ref = (
        None if reference is None else AutoModelForCausalLM.from_pretrained(reference, torch_dtype=torch.float32).eval()
    )
    scores, labels = [], []
    for name, label in (("member", 1), ("nonmember", 0)):
        for line in (REPO / "suites" / "semeval" / "data" / "mia" / f"{name}.jsonl").read_text().splitlines():
            ids = torch.tensor([tokenizer(json.loads(line)["document"]).input_ids])
            if ref is None:
                model.zero_grad()
                model(input_ids=ids, labels=ids).loss.backward()
                norms = [q.grad.norm(p=p) for q in model.parameters() if q.grad is not None]
                scores.append(float(torch.stack(norms).mean()))
            else:
                with torch.no_grad():
                    scores.append(float(model(input_ids=ids, labels=ids).loss - ref(input_ids=ids, labels=ids).loss))
            labels.append(label)
    return scores, labels


@pytest.mark.parametrize("attack", ["gradnorm", "reference"])
def test_semeval_mia_check_with_gradnorm_and_reference(pytester, semeval_models, attack):
    from sklearn.metrics import roc_auc_score

    target = semeval_models["target"]
    reference = semeval_models["retrained"]
    args = ["--suite=semeval", f"--model={target}", "-k", "mia", "--unlearn-partial", "--scorecard=card.json",
            "--setting", f"mia_attack={attack}", f"--cache-dir={pytester.path / 'cache'}"]  # fmt: skip
    if attack == "reference":
        args.append(f"--reference={reference}")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    card = json.loads((pytester.path / "card.json").read_text())
    assert card["settings"]["mia_attack"] == attack
    rows = [json.loads(x) for x in (pytester.path / "card-artifacts" / "mia_losses.jsonl").read_text().splitlines()]
    theirs, labels = _their_semeval_attack_scores(target, reference if attack == "reference" else None)
    assert [r["attack"] for r in rows] == [attack] * len(theirs)
    # Batched float32 passes against one document at a time: the last bits of each loss move
    # (about 1e-6), and a difference of two close losses (reference) keeps that absolute error.
    assert [r["score"] for r in rows] == pytest.approx(theirs, rel=1e-5, abs=1e-5)
    # Higher scores are less member-like: members are the positives of minus the score.
    assert card["aggregates"]["mia_auc"] == pytest.approx(roc_auc_score(labels, [-s for s in theirs]), abs=1e-9)
    # The target memorised its members: both attacks tell them apart, and the MIA check fails.
    assert card["aggregates"]["mia_auc"] > 0.9
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    if attack == "reference":
        assert str(reference) in json.dumps(card["provenance"]["weights"])


def test_semeval_reference_attack_without_a_reference_is_one_line(pytester, semeval_models):
    from tests.test_bad_input import usage_error

    line = usage_error(
        pytester, "--suite=semeval", f"--model={semeval_models['target']}", "--setting", "mia_attack=reference",
    )  # fmt: skip
    assert line == (
        "ERROR: --setting mia_attack=reference: the reference attack needs a reference model: "
        "pass --reference PATH (a model folder)"
    )


TOFU_CHECKS = """
[[checks]]
id = "forget-truth-ratio-ou"
metric = "tofu.truth_ratio_ou"
params = { task = "forget", aggregator = "closer_to_1_better" }
op = ">="
threshold = 0.5

[[checks]]
id = "forget-extraction-strength"
metric = "tofu.extraction_strength"
op = "<="
threshold = 0.5
"""

MORE_TOFU_CHECKS = """
[[checks]]
id = "forget-exact-memorization"
metric = "tofu.exact_memorization"
op = "<="
threshold = 0.5

[[checks]]
id = "mia-reference"
metric = "tofu.mia_auc"
params = { attack = "reference" }
op = "<="
threshold = 0.8
"""


def test_the_tofu_open_unlearning_error_lines_through_the_plugin(pytester, tofu_models):
    tofu_mini = MINI.parent / "tofu-mini"
    head = f'[suite]\nname = "tofu-ou-errors"\nextends = "{tofu_mini / "manifest.toml"}"\n'
    written = pytester.path / "written.toml"
    written.write_text(head + TOFU_CHECKS)
    asked = pytester.path / "asked.toml"
    asked.write_text(head + MORE_TOFU_CHECKS)
    common = ("-p", "no:cacheprovider", f"--cache-dir={pytester.path / 'cache'}", "--scorecard=card.json")

    # The model's own logs and an open-unlearning TOFU_EVAL.json, written by a model run.
    pytester.runpytest_inprocess(
        *common, "--suite", str(written), f"--model={tofu_models['target']}", "--setting=write_openunlearning=true"
    )
    artifacts = json.loads((pytester.path / "card.json").read_text())["artifacts"]
    evals = json.loads(Path(artifacts["openunlearning_eval"]).read_text())
    del evals["exact_memorization"]  # an open-unlearning run whose config left it out
    lacking = pytester.path / "TOFU_EVAL.json"
    lacking.write_text(json.dumps(evals))

    # The reference attack without --reference.
    result = pytester.runpytest_inprocess(*common, "--suite", str(asked), f"--model={tofu_models['target']}",
                                          "-k", "mia")  # fmt: skip
    result.stdout.fnmatch_lines(
        ["*the reference attack needs a reference model: pass --reference PATH (a model folder)*"]
    )
    # TOFU's own logs carry no argmax predictions.
    result = pytester.runpytest_inprocess(*common, "--suite", str(asked), f"--predictions={artifacts['tofu_logs']}",
                                          "-k", "exact")  # fmt: skip
    result.stdout.fnmatch_lines(
        ["*exact memorization and extraction strength need the model itself: pass --model PATH*"]
    )
    # An open-unlearning file without the metric asked for.
    result = pytester.runpytest_inprocess(*common, "--suite", str(asked), f"--predictions={lacking}", "-k", "exact")
    result.stdout.fnmatch_lines(
        ["*--predictions: the TOFU_EVAL.json has no exact_memorization; run open-unlearning's eval with it*"]
    )


# -- MUSE_EVAL.json both ways -------------------------------------------------------------------
ROUND_TRIP_CHECKS = (
    OU_CHECKS
    + """
[[checks]]
id = "verbmem-forget"
metric = "muse.verbmem"
op = "<="
threshold = 10.0

[[checks]]
id = "knowmem-forget"
metric = "muse.knowmem_forget"
op = "<="
threshold = 10.0

[[checks]]
id = "knowmem-retain"
metric = "muse.knowmem_retain"
op = ">="
threshold = 10.0

[[checks]]
id = "privleak"
metric = "muse.privleak"
op = "<="
threshold = 10.0
"""
)


def test_muse_eval_is_written_and_read_back_to_the_same_scorecard(pytester, muse_models, muse_cache):
    from sklearn.metrics import roc_auc_score

    manifest = _manifest(pytester.path, ROUND_TRIP_CHECKS)
    common = ("-p", "no:cacheprovider", "--suite", manifest, f"--cache-dir={muse_cache}")

    def go(*args: str) -> dict:
        result = pytester.runpytest_inprocess(*common, "--scorecard=card.json", *args)
        card = json.loads((pytester.path / "card.json").read_text())
        assert len(card["checks"]) == 6, result.stdout.str()
        return card

    # The retrained model's file first: it is the target's --reference afterwards.
    retrained = go(f"--model={muse_models['retrained']}", "--setting=write_openunlearning=true")
    retrained_eval = pytester.path / "retrained_MUSE_EVAL.json"
    retrained_eval.write_bytes(Path(retrained["artifacts"]["openunlearning_eval"]).read_bytes())
    retrained_summary = pytester.path / "retrained_MUSE_SUMMARY.json"
    retrained_summary.write_bytes(Path(retrained["artifacts"]["openunlearning_summary"]).read_bytes())
    card = go(f"--model={muse_models['target']}", f"--reference={muse_models['retrained']}",
              "--setting=write_openunlearning=true")  # fmt: skip
    values = {c["id"]: c["value"] for c in card["checks"]}
    evals = json.loads(Path(card["artifacts"]["openunlearning_eval"]).read_text())
    summary = json.loads(Path(card["artifacts"]["openunlearning_summary"]).read_text())

    # open-unlearning's layout: ROUGE in [0, 1] per index, mia_min_k's AUC with holdout = 1
    # scored by the Min-K score (1 - MUSE's AUC), privleak signed, summary = every agg_value.
    assert sorted(evals) == sorted(["exact_memorization", "extraction_strength", "forget_knowmem_ROUGE",
                                    "forget_verbmem_ROUGE", "mia_min_k", "privleak", "retain_knowmem_ROUGE"])  # fmt: skip
    assert summary == {name: entry["agg_value"] for name, entry in evals.items()}
    verbmem = [v["rougeL_f1"] for v in evals["forget_verbmem_ROUGE"]["value_by_index"].values()]
    assert 100 * np.mean(verbmem) == pytest.approx(values["verbmem-forget"], rel=1e-12)
    forget = [v["score"] for v in evals["mia_min_k"]["forget"]["value_by_index"].values()]
    holdout = [v["score"] for v in evals["mia_min_k"]["holdout"]["value_by_index"].values()]
    their_auc = roc_auc_score([0] * len(forget) + [1] * len(holdout), forget + holdout)
    assert evals["mia_min_k"]["auc"] == pytest.approx(their_auc, abs=1e-12)
    assert card["aggregates"]["auc"] == pytest.approx(1 - their_auc, abs=1e-12)
    assert evals["privleak"]["agg_value"] == pytest.approx(card["aggregates"]["privleak"], rel=1e-12)
    assert abs(evals["privleak"]["agg_value"]) == pytest.approx(values["privleak"], rel=1e-12)

    # Read back without a model: the same six values, with the retrained model as a folder or
    # as its own MUSE_EVAL.json.
    for reference in (muse_models["retrained"], retrained_eval):
        again = go(f"--predictions={card['artifacts']['openunlearning_eval']}", f"--reference={reference}")
        assert {c["id"]: c["value"] for c in again["checks"]} == pytest.approx(values, rel=1e-12)
        assert again["model"]["path"] is None

    # The retrained model's MUSE_SUMMARY.json as --reference: PrivLeak needs only its mia_min_k
    # AUC (theirs: forget 0, holdout 1; ours is 1 - theirs), so every value is the same again.
    their_retrained_auc = json.loads(retrained_summary.read_text())["mia_min_k"]
    again = go(f"--predictions={card['artifacts']['openunlearning_eval']}", f"--reference={retrained_summary}")
    assert {c["id"]: c["value"] for c in again["checks"]} == pytest.approx(values, rel=1e-12)
    privleak = next(c for c in again["checks"] if c["id"] == "privleak")
    assert privleak["details"]["auc_retrain"] == pytest.approx(1 - their_retrained_auc, abs=1e-12)
    assert privleak["details"]["auc_retrain_source"] == f"--reference {retrained_summary} (its mia_min_k AUC)"
    # A summary without the AUC, or with one outside (0, 1): one line each.
    for broken, why in (
        ({"privleak": 1.0}, "the MUSE_SUMMARY.json has no mia_min_k (the retrained model's MIA AUC PrivLeak needs)"),
        ({"mia_min_k": 1.5}, "mia_min_k = 1.5; expected an AUC in [[]0, 1[]]"),
    ):
        bad = pytester.path / "bad" / "MUSE_SUMMARY.json"
        bad.parent.mkdir(exist_ok=True)
        bad.write_text(json.dumps(broken))
        result = pytester.runpytest_inprocess(*common, f"--model={muse_models['target']}", f"--reference={bad}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: --reference {bad}: {why}*"])

    # A summary has no per-sample values: one line naming the file to pass instead.
    result = pytester.runpytest_inprocess(*common, f"--predictions={card['artifacts']['openunlearning_summary']}")
    result.stderr.fnmatch_lines([
        f"ERROR: --predictions {card['artifacts']['openunlearning_summary']}: open-unlearning's MUSE_SUMMARY.json "
        "holds only aggregate values, no per-sample scores to check or bootstrap; pass the MUSE_EVAL.json beside it"
    ])  # fmt: skip
    # A file without a metric a check reads: one line naming it.
    del evals["forget_verbmem_ROUGE"]
    lacking = pytester.path / "MUSE_EVAL.json"
    lacking.write_text(json.dumps(evals))
    result = pytester.runpytest_inprocess(*common, f"--predictions={lacking}", f"--reference={retrained_eval}",
                                          "-k", "verbmem-forget")  # fmt: skip
    result.stdout.fnmatch_lines([
        f"*--predictions {lacking}: the MUSE_EVAL.json has no forget_verbmem_ROUGE; run open-unlearning's MUSE eval "
        "with it*"
    ])  # fmt: skip
    # A retrained model's file of other texts cannot be paired with the model's.
    short = json.loads(retrained_eval.read_text())
    short["mia_min_k"]["forget"]["value_by_index"].popitem()
    other = pytester.path / "other" / "MUSE_EVAL.json"
    other.parent.mkdir()
    other.write_text(json.dumps(short))
    result = pytester.runpytest_inprocess(*common, f"--predictions={lacking}", f"--reference={other.parent}")
    result.stderr.fnmatch_lines([
        f"ERROR: --reference {other}: its mia_min_k scores {len(forget) - 1} forget and {len(holdout)} holdout texts, "
        f"the model {len(forget)} and {len(holdout)}; pass the retrained model's MUSE_EVAL.json of the same data"
    ])  # fmt: skip
