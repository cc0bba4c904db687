"""open-unlearning's TOFU result files, both ways, through the plugin on the TOFU world.

``--setting write_openunlearning=true`` writes ``TOFU_EVAL.json`` and ``TOFU_SUMMARY.json``; their
numbers are checked against open-unlearning's aggregation transcribed here
(``src/evals/metrics/memorization.py`` ``truth_ratio``/``probability_w_options``, ``utils.py``
``get_forget_quality``, ``src/evals/metrics/utility.py`` ``hm_aggregate``: ``scipy.stats.hmean``)
run on our per-sample logs, and the file read back as ``--predictions`` scores the same card.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ou-files-cache")


def run(pytester: pytest.Pytester, cache_dir: Path, *args: str):
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", "tofu-mini", "--batch-size=64", f"--cache-dir={cache_dir}",
        "--scorecard=card.json", *args,
    )  # fmt: skip
    return result, json.loads((pytester.path / "card.json").read_text())


def their_truth_ratio(correct_losses, wrong_losses) -> np.ndarray:
    """memorization.py truth_ratio: aggregate_to_1D, exp(-loss), wrong / (correct + 1e-10)."""
    c = np.exp(-np.asarray(correct_losses))
    w = np.exp(-np.mean(np.asarray(wrong_losses), axis=1))
    return w / (c + 1e-10)


def test_tofu_eval_and_summary_are_written_and_read_back(pytester, tofu_models, cache_dir):
    from scipy.stats import hmean, ks_2samp

    result, card = run(
        pytester, cache_dir, f"--model={tofu_models['target']}", f"--reference={tofu_models['retain']}",
        "--setting=write_openunlearning=true",
    )  # fmt: skip
    artifacts = card["artifacts"]
    evals = json.loads(Path(artifacts["openunlearning_eval"]).read_text())
    summary = json.loads(Path(artifacts["openunlearning_summary"]).read_text())
    assert summary == {name: entry["agg_value"] for name, entry in evals.items()}

    # Our per-sample logs (TOFU's layout), aggregated the open-unlearning way by hand.
    ours = json.loads(Path(artifacts["tofu_logs"]).read_text())
    reference = json.loads(Path(artifacts["tofu_reference_logs"]).read_text())

    def column(log: dict, key: str) -> list:
        return [log[key][i] for i in log["avg_gt_loss"]]

    tr = {}
    for name, task, file in (("forget_truth_ratio", "forget", "eval_log_forget.json"),
                             ("retain_Truth_Ratio", "retain", "eval_log.json"),
                             ("ra_Truth_Ratio", "ra", "eval_real_author_wo_options.json"),
                             ("wf_Truth_Ratio", "wf", "eval_real_world_wo_options.json")):  # fmt: skip
        log = ours[file]
        tr[task] = their_truth_ratio(column(log, "avg_paraphrased_loss"), column(log, "average_perturb_loss"))
        if task == "forget":
            expected = np.mean(np.minimum(tr[task], 1 / (tr[task] + 1e-10)))
        else:
            expected = np.mean(np.maximum(0, 1 - tr[task]))
        assert evals[name]["agg_value"] == pytest.approx(expected, rel=1e-9)
    normalised = {}
    for task, file in (("ra", "eval_real_author_wo_options.json"), ("wf", "eval_real_world_wo_options.json")):
        log = ours[file]
        correct = np.exp(-np.array(column(log, "avg_gt_loss")))
        wrong = np.exp(-np.array(column(log, "average_perturb_loss"))).sum(axis=1)
        normalised[task] = np.mean(correct / (correct + wrong + 1e-10))
        assert evals[f"{task}_Q_A_Prob_normalised"]["agg_value"] == pytest.approx(normalised[task], rel=1e-9)
    retain = ours["eval_log.json"]
    nine = [
        np.mean(np.exp(-np.array(column(retain, "avg_gt_loss")))), np.mean(column(retain, "rougeL_recall")),
        evals["retain_Truth_Ratio"]["agg_value"],
        normalised["ra"], np.mean(column(ours["eval_real_author_wo_options.json"], "rougeL_recall")),
        evals["ra_Truth_Ratio"]["agg_value"],
        normalised["wf"], np.mean(column(ours["eval_real_world_wo_options.json"], "rougeL_recall")),
        evals["wf_Truth_Ratio"]["agg_value"],
    ]  # fmt: skip
    assert evals["model_utility"]["agg_value"] == pytest.approx(hmean(nine), rel=1e-9)
    ref_forget = reference["eval_log_forget.json"]
    ref_tr = their_truth_ratio(column(ref_forget, "avg_paraphrased_loss"), column(ref_forget, "average_perturb_loss"))
    fq = ks_2samp(1 / (tr["forget"] + 1e-10), 1 / (ref_tr + 1e-10)).pvalue
    assert evals["forget_quality"]["agg_value"] == pytest.approx(fq, rel=1e-9)
    # Their forget quality is TOFU's up to the epsilons: the card's own check agrees.
    checks = {c["id"]: c["value"] for c in card["checks"]}
    assert checks["forget-quality"] == pytest.approx(fq, rel=1e-6)

    # Read back: TOFU_EVAL.json as --predictions scores the same checks without a model.
    again, card2 = run(
        pytester, cache_dir, f"--predictions={artifacts['openunlearning_eval']}",
        f"--reference={artifacts['tofu_reference_logs']}",
    )  # fmt: skip
    assert {c["id"]: c["value"] for c in card2["checks"]} == pytest.approx(checks, rel=1e-9), again.stdout.str()


def test_a_bad_write_openunlearning_is_one_line(pytester, tofu_models, cache_dir):
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", "tofu-mini", f"--model={tofu_models['target']}",
        "--setting=write_openunlearning=maybe",
    )  # fmt: skip
    assert result.ret != pytest.ExitCode.OK
    result.stderr.fnmatch_lines(
        [
            "ERROR: suite tofu-mini (manifest or --setting): setting 'write_openunlearning' must be true or false, got 'maybe'"
        ]
    )


MEMORIZATION_CHECKS = """
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
"""


def tofu_checks_and(folder: Path, name: str, extra: str) -> Path:
    """A manifest extending tofu-mini with tofu's four checks and ``extra`` (a child's
    [[checks]] replace its parent's, so the four are copied beside the new ones)."""
    mini = Path(__file__).resolve().parent.parent / "suites" / "tofu-mini"
    full = (mini.parent / "tofu" / "manifest.toml").read_text()
    head = f'[suite]\nname = "{name}"\nextends = "{mini / "manifest.toml"}"\n\n'
    manifest = folder / f"{name}.toml"
    manifest.write_text(head + full[full.index("[[checks]]") :] + extra)
    return manifest


def run_manifest(pytester: pytest.Pytester, manifest: Path, cache_dir: Path, *args: str):
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", str(manifest), f"--cache-dir={cache_dir}", "--scorecard=card.json", *args,
    )  # fmt: skip
    return result, json.loads((pytester.path / "card.json").read_text())


def test_memorization_scores_travel_through_tofu_eval_and_summaries_are_refused(pytester, tofu_models, cache_dir):
    manifest = tofu_checks_and(pytester.path, "tofu-mem", MEMORIZATION_CHECKS)

    def go(*args: str):
        return run_manifest(pytester, manifest, cache_dir, *args)

    _, card = go(
        f"--model={tofu_models['target']}",
        f"--reference={tofu_models['retain']}",
        "--setting=write_openunlearning=true",
    )
    values = {c["id"]: c["value"] for c in card["checks"]}
    evals = json.loads(Path(card["artifacts"]["openunlearning_eval"]).read_text())
    for check, name in (("forget-exact-memorization", "exact_memorization"),
                        ("forget-extraction-strength", "extraction_strength")):  # fmt: skip
        scores = [v["score"] for v in evals[name]["value_by_index"].values()]
        assert len(scores) == 10 and values[check] == pytest.approx(np.mean(scores), rel=1e-12)
        assert evals[name]["agg_value"] == pytest.approx(values[check], rel=1e-12)
    # The file alone, without a model, gives the same six checks.
    result, again = go(
        f"--predictions={card['artifacts']['openunlearning_eval']}",
        f"--reference={card['artifacts']['tofu_reference_logs']}",
    )
    assert {c["id"]: c["value"] for c in again["checks"]} == pytest.approx(values, rel=1e-12), result.stdout.str()
    # A summary has no per-sample scores: one line saying which file to pass instead.
    summary = card["artifacts"]["openunlearning_summary"]
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--suite", str(manifest), f"--predictions={summary}"
    )
    result.stderr.fnmatch_lines([
        f"ERROR: --predictions {summary}: open-unlearning's TOFU_SUMMARY.json holds only aggregate values, no "
        "per-sample scores to check or bootstrap; pass the TOFU_EVAL.json beside it"
    ])  # fmt: skip


MIA_CHECKS = "".join(
    f'\n[[checks]]\nid = "mia-{attack}"\nmetric = "tofu.mia_auc"\nparams = {{ attack = "{attack}" }}\nop = "<="\n'
    "threshold = 0.75\n"
    for attack in ("loss", "min_k", "gradnorm", "reference")
)


def test_mia_scores_travel_through_tofu_eval(pytester, tofu_models, cache_dir):
    # tofu's four checks ride along: TOFU_EVAL.json is written from the logs they compute.
    manifest = tofu_checks_and(pytester.path, "tofu-attacks", MIA_CHECKS)

    def go(*args: str):
        return run_manifest(pytester, manifest, cache_dir, *args)

    _, card = go(
        f"--model={tofu_models['target']}",
        f"--reference={tofu_models['retain']}",
        "--setting=write_openunlearning=true",
    )
    values = {c["id"]: c["value"] for c in card["checks"] if c["id"].startswith("mia-")}
    assert set(values) == {"mia-loss", "mia-min_k", "mia-gradnorm", "mia-reference"}
    evals = json.loads(Path(card["artifacts"]["openunlearning_eval"]).read_text())
    # Written in open-unlearning's orientation (mia/utils.py: forget 0, holdout 1, the score as
    # it is), which is the same number as the check's (forget 1, minus the score).
    for attack in ("loss", "zlib", "min_k", "min_k_plus_plus", "gradnorm", "reference"):
        entry = evals[f"mia_{attack}"]
        forget = [v["score"] for v in entry["forget"]["value_by_index"].values()]
        holdout = [v["score"] for v in entry["holdout"]["value_by_index"].values()]
        assert len(forget) == len(holdout) == 10
        pairs = [(f, h) for f in forget for h in holdout]
        by_hand = sum(1.0 if h > f else 0.5 if h == f else 0.0 for f, h in pairs) / len(pairs)
        assert entry["auc"] == entry["agg_value"] == pytest.approx(by_hand, abs=1e-12)
        if f"mia-{attack}" in values:
            assert values[f"mia-{attack}"] == pytest.approx(by_hand, abs=1e-12)
    # The file alone, without a model, gives the same four checks.
    path = Path(card["artifacts"]["openunlearning_eval"])
    result, again = go(f"--predictions={path}", f"--reference={card['artifacts']['tofu_reference_logs']}")
    mia = [c for c in again["checks"] if c["id"].startswith("mia-")]
    assert {c["id"]: c["value"] for c in mia} == pytest.approx(values, abs=1e-12), result.stdout.str()
    assert all(c["details"].get("source") == "TOFU_EVAL.json" for c in mia)

    # Hand-made scores: forget (1, 2), holdout (3, 0.5): of 4 pairs, holdout is higher in 2.
    edited = dict(evals)
    edited["mia_min_k"] = {
        "forget": {"value_by_index": {"0": {"score": 1.0}, "1": {"score": 2.0}}},
        "holdout": {"value_by_index": {"0": {"score": 3.0}, "1": {"score": 0.5}}},
    }
    del edited["mia_gradnorm"]
    hand = pytester.path / "hand" / "TOFU_EVAL.json"
    hand.parent.mkdir()
    hand.write_text(json.dumps(edited))
    tofu_checks_and(pytester.path, "tofu-attacks", "\n[[checks]]" + MIA_CHECKS.split("[[checks]]")[2])
    _, card = go(f"--predictions={hand}", "-k", "mia", "--unlearn-partial")
    assert [(c["id"], c["value"]) for c in card["checks"] if c["value"] is not None] == [("mia-min_k", 0.5)]
    # An attack the file lacks, or a score out of its domain, is one line.
    tofu_checks_and(pytester.path, "tofu-attacks", MIA_CHECKS)
    result, card = go(f"--predictions={hand}", "-k", "mia", "--unlearn-partial")
    errors = {c["id"]: c.get("error") or c["details"].get("error") for c in card["checks"] if c["passed"] is not True}
    assert "mia-gradnorm" in errors, card["checks"]
    assert "no per-sample mia_gradnorm" in result.stdout.str()
    edited["mia_min_k"]["holdout"]["value_by_index"]["1"]["score"] = "Infinity"
    hand.write_text(json.dumps(edited).replace('"Infinity"', "Infinity"))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--suite", str(manifest), f"--predictions={hand}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(errors) == 1 and "mia_min_k.holdout[1]" in errors[0], result.stderr.str()
