"""TOFU's aggregation, checked against hand-computed values and against an independent
transcription of locuslab/tofu's ``aggregate_eval_stat.py`` (``get_model_utility``,
``get_forget_quality``) and open-unlearning's truth ratio / forget quality."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import hmean, ks_2samp

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.tofu import metrics as tm
from pytest_unlearn.tofu.logs import dump_logs, load_logs

LN = math.log


def _log(task, gt, para, pert, rouge):
    n = len(gt)
    return tm.TaskLog(
        task=task,
        indices=tuple(str(i) for i in range(n)),
        gt_loss=np.array(gt, dtype=float),
        paraphrased_loss=np.array(para, dtype=float),
        perturbed_loss=np.array(pert, dtype=float),
        rouge=np.array(rouge, dtype=float),
    )


def test_hand_computed_values():
    # retain: p = 1/2 and 1/4 -> 0.375; R = exp(mean(pert) - para) = e^1 and e^-1:
    # max(0, 1 - 1/R) = 1 - 1/e and 0 -> (1 - 1/e) / 2.
    retain = _log("retain", [LN(2), LN(4)], [1.0, 2.0], [[1.5, 2.5], [0.5, 1.5]], [1.0, 0.5])
    assert tm.probability(retain) == pytest.approx(0.375)
    assert tm.rouge(retain) == pytest.approx(0.75)
    assert tm.truth_ratio(retain) == pytest.approx((1 - math.exp(-1)) / 2)
    # real authors: p_true = 1/2, perturbed 1/4 and 1/4 -> 1/2 / (1/2 + 1/2) = 0.5; second
    # sample p_true = 1/2, perturbed 1/8 and 1/8 -> 0.5 / 0.75 = 2/3.
    ra = _log("real_authors", [LN(2), LN(2)], [LN(2), LN(2)], [[LN(4), LN(4)], [LN(8), LN(8)]], [0.0, 1.0])
    assert tm.probability(ra) == pytest.approx((0.5 + 2 / 3) / 2)
    # R = exp(ln 4 - ln 2) = 2 and exp(ln 8 - ln 2) = 4: mean(1/2, 3/4)
    assert tm.truth_ratio(ra) == pytest.approx(0.625)
    # forget: R = e^1 and e^-2: min(R, 1/R) = 1/e and e^-2.
    forget = _log("forget", [0.0, 0.0], [1.0, 3.0], [[2.0, 2.0], [1.0, 1.0]], [0.2, 0.4])
    assert tm.truth_ratio(forget) == pytest.approx((math.exp(-1) + math.exp(-2)) / 2)
    assert tm.probability(forget) == pytest.approx(1.0)
    # Model utility: harmonic mean of 9 values; with world facts a copy of real authors.
    wf = _log("world_facts", ra.gt_loss, ra.paraphrased_loss, ra.perturbed_loss, [0.5, 0.5])
    nine = [0.375, 0.75, (1 - math.exp(-1)) / 2, (0.5 + 2 / 3) / 2, 0.5, 0.625, (0.5 + 2 / 3) / 2, 0.5, 0.625]
    logs = {"retain": retain, "real_authors": ra, "world_facts": wf, "forget": forget}
    assert tm.model_utility(logs) == pytest.approx(9 / sum(1 / v for v in nine))
    # Forget quality: every model R (e, e^-2) vs reference R (e^5, e^6): D = 1; the exact
    # two-sided p-value for n = m = 2 is 2 / C(4, 2) = 1/3.
    ref = _log("forget", [0.0, 0.0], [0.0, 0.0], [[5.0, 5.0], [6.0, 6.0]], [0.0, 0.0])
    pvalue, statistic = tm.ks_test(tm.truth_ratios(forget), tm.truth_ratios(ref))
    assert statistic == pytest.approx(1.0)
    assert pvalue == pytest.approx(1 / 3)


# --- an independent transcription of locuslab/tofu aggregate_eval_stat.py ------------------
def reference_model_utility(eval_result_dict):
    names = {
        "eval_real_author_wo_options.json": "Real Authors",
        "eval_real_world_wo_options.json": "Real World",
        "eval_log.json": "Retain",
        "eval_log_forget.json": "Forget",
    }
    out = {}
    for k, v in eval_result_dict.items():
        if "eval_log" in k:
            prob = np.mean(np.exp(-1 * np.array(list(v["avg_gt_loss"].values()))))
        else:
            true_p = np.exp(-1 * np.array(list(v["avg_gt_loss"].values())))
            false_p = np.exp(-1 * np.array(list(v["average_perturb_loss"].values())))
            all_p = np.concatenate([np.expand_dims(true_p, axis=-1), false_p], axis=1).sum(-1)
            prob = np.mean(true_p / all_p)
        out[f"Prob. {names[k]}"] = prob
        out[f"ROUGE {names[k]}"] = np.array(list(v["rougeL_recall"].values())).mean()
        para = np.array(list(v["avg_paraphrased_loss"].values()))
        pert = np.array(list(v["average_perturb_loss"].values())).mean(axis=-1)
        stat = np.exp(pert - para)
        if "forget" in k:
            out[f"Truth Ratio {names[k]}"] = np.mean(np.minimum(stat, 1 / stat))
        else:
            out[f"Truth Ratio {names[k]}"] = np.mean(np.maximum(0, 1 - 1 / stat))
    out["Model Utility"] = hmean([v for k, v in out.items() if "Forget" not in k])
    return out


def reference_forget_quality(unlearn, retain):
    def ratio(result):
        forget = result["eval_log_forget.json"]
        para = np.array(list(forget["avg_paraphrased_loss"].values()))
        pert = np.array(list(forget["average_perturb_loss"].values())).mean(axis=-1)
        return np.exp(pert - para)

    res = ks_2samp(ratio(unlearn), ratio(retain))
    return {"Forget Quality": res.pvalue, "KS Test Forget": res.statistic}


def _random_logs(rng, n=12, k=5, shift=0.0):
    logs = {}
    for task in tm.TASKS:
        gt = rng.uniform(0.05, 3.0, n)
        # Clipped: a mean NLL is >= 0, and the log loader refuses a negative one (pytest_unlearn/domains.py).
        para = np.clip(gt + rng.normal(0, 0.3, n), 0.01, None) if task in ("retain", "forget") else gt
        logs[task] = _log(task, gt, para, rng.uniform(0.5, 4.0, (n, k)) + shift, rng.uniform(0, 1, n))
    return logs


def test_equals_the_reference_aggregation_on_the_same_logs(tmp_path):
    rng = np.random.default_rng(7)
    model, retain = _random_logs(rng, n=20), _random_logs(rng, n=20, shift=1.5)
    model_json, retain_json = json.loads(json.dumps(dump_logs(model))), json.loads(json.dumps(dump_logs(retain)))
    expected = reference_model_utility(model_json)
    expected.update(reference_forget_quality(model_json, retain_json))

    (tmp_path / "model.json").write_text(json.dumps(model_json))
    (tmp_path / "retain.json").write_text(json.dumps(retain_json))
    inputs = tm.TofuInputs(
        logs=load_logs(tmp_path / "model.json", "--predictions"),
        reference=load_logs(tmp_path / "retain.json", "--reference"),
    )
    agg = tm.aggregates(inputs)
    assert agg["details"] == pytest.approx({k: v for k, v in expected.items() if k[:5] in ("Prob.", "ROUGE", "Truth")})
    assert len(agg["details"]) == 12
    assert agg["model_utility"] == pytest.approx(expected["Model Utility"], rel=1e-12)
    assert agg["forget_quality"] == pytest.approx(expected["Forget Quality"], rel=1e-12)
    assert agg["ks_statistic"] == pytest.approx(expected["KS Test Forget"])
    assert 0 < expected["Forget Quality"] < 0.05  # shifted reference: a real difference
    assert tm.forget_quality_metric(inputs).value == agg["forget_quality"]
    assert tm.model_utility_metric(inputs).value == agg["model_utility"]


def _open_unlearning(logs):
    """The same per-sample values as open-unlearning's TOFU_EVAL.json stores them."""
    prefix = {"forget": "forget", "retain": "retain", "real_authors": "ra", "world_facts": "wf"}
    out = {}
    for task, log in logs.items():
        p = prefix[task]

        def probs(losses, indices=log.indices):
            return {i: {"prob": math.exp(-x), "avg_loss": x} for i, x in zip(indices, losses)}

        out[f"{p}_Q_A_Prob"] = {"agg_value": 0.0, "value_by_index": probs(log.gt_loss.tolist())}
        if task in ("forget", "retain"):
            out[f"{p}_Q_A_PARA_Prob"] = {"agg_value": 0.0, "value_by_index": probs(log.paraphrased_loss.tolist())}
        out[f"{p}_Q_A_PERT_Prob"] = {
            "agg_value": 0.0,
            "value_by_index": {
                i: {"prob": [math.exp(-x) for x in row], "avg_loss": row}
                for i, row in zip(log.indices, log.perturbed_loss.tolist())
            },
        }
        out[f"{p}_Q_A_ROUGE"] = {
            "agg_value": 0.0,
            "value_by_index": {i: {"rougeL_recall": r, "rougeL_f1": 0.0} for i, r in zip(log.indices, log.rouge)},
        }
    return out


def test_open_unlearning_logs_give_the_same_numbers(tmp_path):
    rng = np.random.default_rng(3)
    model, retain = _random_logs(rng), _random_logs(rng, shift=0.1)
    (tmp_path / "TOFU_EVAL.json").write_text(json.dumps(_open_unlearning(model)))
    (tmp_path / "ref.json").write_text(json.dumps(_open_unlearning(retain)))
    loaded = load_logs(tmp_path, "--predictions")  # a folder holding TOFU_EVAL.json
    ref = load_logs(tmp_path / "ref.json", "--reference")
    ours = tm.aggregates(tm.TofuInputs(logs=loaded, reference=ref))
    direct = tm.aggregates(tm.TofuInputs(logs=model, reference=retain))
    assert ours.pop("details") == pytest.approx(direct.pop("details"))
    assert ours == pytest.approx(direct)

    # open-unlearning's own orientation: tr = p_wrong / (p_true + 1e-10) with p = exp(-mean
    # loss), forget quality = ks_2samp(1 / (tr + 1e-10), ...): the same test up to the epsilons.
    def ou_tr(log):
        return np.exp(-log.perturbed_loss.mean(-1)) / (np.exp(-log.paraphrased_loss) + 1e-10)

    ou = ks_2samp(1 / (ou_tr(model["forget"]) + 1e-10), 1 / (ou_tr(retain["forget"]) + 1e-10)).pvalue
    assert ours["forget_quality"] == pytest.approx(ou, rel=1e-9)
    details = tm.sub_metrics(loaded)
    ou_forget = np.mean(np.minimum(ou_tr(model["forget"]), 1 / (ou_tr(model["forget"]) + 1e-10)))
    assert details["Truth Ratio Forget"] == pytest.approx(ou_forget, rel=1e-8)
    ou_retain = np.mean(np.maximum(0, 1 - ou_tr(model["retain"])))
    assert details["Truth Ratio Retain"] == pytest.approx(ou_retain, rel=1e-8)


def test_bad_logs_are_one_line(tmp_path):
    logs = dump_logs(_random_logs(np.random.default_rng(0), n=3))
    del logs["eval_log.json"]["avg_paraphrased_loss"]
    (tmp_path / "a.json").write_text(json.dumps(logs))
    with pytest.raises(UnlearnError, match=r"eval_log.json: no avg_paraphrased_loss \(has"):
        load_logs(tmp_path / "a.json", "--predictions")
    logs = dump_logs(_random_logs(np.random.default_rng(0), n=3))
    del logs["eval_log_forget.json"]["rougeL_recall"]["2"]
    (tmp_path / "b.json").write_text(json.dumps(logs))
    with pytest.raises(UnlearnError, match="rougeL_recall has 2 samples but avg_gt_loss has 3"):
        load_logs(tmp_path / "b.json", "--predictions")
    (tmp_path / "c.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(UnlearnError, match="neither TOFU's eval_log_aggregated.json"):
        load_logs(tmp_path / "c.json", "--reference")


def test_log_folders_in_each_layout_read_the_same(tmp_path):
    logs = _random_logs(np.random.default_rng(5), n=4)
    aggregated = dump_logs(logs)
    (tmp_path / "tofu").mkdir()
    for name, entry in aggregated.items():  # TOFU writes one eval_*.json per task as well
        (tmp_path / "tofu" / name).write_text(json.dumps(entry))
    (tmp_path / "agg").mkdir()
    (tmp_path / "agg" / "eval_log_aggregated.json").write_text(json.dumps(aggregated))
    (tmp_path / "ou").mkdir()
    (tmp_path / "ou" / "TOFU_EVAL.json").write_text(json.dumps(_open_unlearning(logs)))
    expected = tm.sub_metrics(logs)
    for folder in ("tofu", "agg", "ou"):
        loaded = load_logs(tmp_path / folder, "--reference")
        assert set(loaded) == set(tm.TASKS)
        assert tm.sub_metrics(loaded) == pytest.approx(expected)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnlearnError, match="no eval_log_aggregated.json, TOFU_EVAL.json or eval_log"):
        load_logs(tmp_path / "empty", "--reference")
