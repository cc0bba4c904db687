"""Fuzzing the VALUES of every numeric field of every loader (issue 23; issue 15 fuzzed the files).

Any value Hypothesis draws (nan, +-inf, negatives, > 1, huge, strings, booleans, null, lists) is
either inside the field's domain, and loaded, or refused with one line naming the field; never a
traceback and never a scored number. Loaders are called in-process (fast); the face suites'
per-image file goes through the real plugin, where a refusal must also leave no passing card.

CI runs a few examples per field; ``--hypothesis-profile=unlearn-fuzz`` runs many.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_unlearn.errors import UnlearnError

CI_EXAMPLES = 12
EXAMPLES = settings.default.max_examples if settings.get_current_profile_name() == "unlearn-fuzz" else CI_EXAMPLES
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)

#: The values every numeric field is tried with on every run (Hypothesis draws more around them).
SPECIAL = (math.nan, math.inf, -math.inf, -1, -1e-9, 0, 0.5, 1.0000001, 2, 1e308, 10**400, True, "0.5", None)
#: Values of every kind, in and out of any numeric domain.
VALUES = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
)


def specials(**choices: list[Any]) -> Any:
    """The test run with each of SPECIAL as ``value``, for every combination of ``choices``,
    besides what Hypothesis draws (a value one draw in a hundred finds is tried every run)."""

    def apply(test: Any) -> Any:
        for combination in itertools.product(*choices.values()):
            for value in SPECIAL:
                test = example(value=value, **dict(zip(choices, combination)))(test)
        return test

    return apply


def number(value: Any) -> float | None:
    """``value`` as the float a strict numeric field takes (an int or a float, not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def in_range(value: Any, low: float | None = None, high: float | None = None) -> bool:
    x = number(value)
    return x is not None and math.isfinite(x) and (low is None or x >= low) and (high is None or x <= high)


def one_line(exc: UnlearnError, *needles: str) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


# -- wmdp / mcq: --predictions log-likelihoods ------------------------------------------------------
@FUZZ
@given(value=VALUES, label=st.sampled_from("ABCD"))
@specials(label=["A"])
def test_mcq_loglikelihoods(tmp_path_factory, value, label):
    from pytest_unlearn.mcq.data import load_loglikelihoods

    path = tmp_path_factory.mktemp("mcq") / "scored.jsonl"
    lls = {"A": -1.0, "B": -2.0, "C": -3.0, "D": -4.0, label: value}
    path.write_text(json.dumps({"subset": "bio", "index": 0, "loglikelihoods": lls}) + "\n")
    try:
        rows = load_loglikelihoods(path, ("subset", "index"), ("A", "B", "C", "D"))
    except UnlearnError as exc:
        assert not in_range(value, high=0.0), exc
        one_line(exc, f"--predictions {path}")
        return
    assert in_range(value, high=0.0)
    assert rows["bio:0"].loglikelihoods["ABCD".index(label)] == float(value)


@FUZZ
@given(value=VALUES)
@specials()
def test_mcq_prediction_index(tmp_path_factory, value):
    from pytest_unlearn.mcq.data import load_loglikelihoods

    path = tmp_path_factory.mktemp("mcq") / "scored.jsonl"
    lls = {"A": -1.0, "B": -2.0, "C": -3.0, "D": -4.0}
    path.write_text(json.dumps({"subset": "bio", "index": value, "loglikelihoods": lls}) + "\n")
    try:
        rows = load_loglikelihoods(path, ("subset", "index"), ("A", "B", "C", "D"))
    except UnlearnError as exc:
        assert not (type(value) is int and value >= 0), exc
        one_line(exc, f"--predictions {path} line 1", 'field "index"', "(an integer >= 0)")
        return
    assert type(value) is int and value >= 0 and list(rows) == [f"bio:{value}"]


# -- wmdp / mcq: question rows ------------------------------------------------------------------------
@FUZZ
@given(value=VALUES)
@specials()
def test_mcq_answer_index(tmp_path_factory, value):
    from pytest_unlearn.mcq.data import load_subset

    path = tmp_path_factory.mktemp("mcq") / "wmdp-bio.jsonl"
    path.write_text(json.dumps({"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": value}) + "\n")
    try:
        (question,) = load_subset(path, "bio", 4)
    except UnlearnError as exc:
        one_line(exc, f"{path}:1", "'answer'")
        return
    assert type(value) is int and 0 <= value < 4 and question.answer == value


# -- tofu: evaluation logs (TOFU's layout and open-unlearning's) -------------------------------------
TOFU_FIELDS = {"avg_gt_loss": (0.0, None), "avg_paraphrased_loss": (0.0, None), "rougeL_recall": (0.0, 1.0)}


def _tofu_log(n: int = 3) -> dict[str, Any]:
    return {
        "avg_gt_loss": {str(i): 1.0 + i for i in range(n)},
        "avg_paraphrased_loss": {str(i): 1.5 for i in range(n)},
        "average_perturb_loss": {str(i): [2.0, 2.5] for i in range(n)},
        "rougeL_recall": {str(i): 0.25 for i in range(n)},
    }


@FUZZ
@given(value=VALUES, field=st.sampled_from([*TOFU_FIELDS, "average_perturb_loss"]), index=st.integers(0, 2))
@specials(field=[*TOFU_FIELDS, "average_perturb_loss"], index=[1])
def test_tofu_log_values(tmp_path_factory, value, field, index):
    from pytest_unlearn.tofu.logs import load_logs

    log = _tofu_log()
    if field == "average_perturb_loss":
        log[field][str(index)][1] = value
        low, high = 0.0, None
    else:
        log[field][str(index)] = value
        low, high = TOFU_FIELDS[field]
    path = tmp_path_factory.mktemp("tofu") / "eval_log_aggregated.json"
    path.write_text(json.dumps({"eval_log_forget.json": log}))
    try:
        logs = load_logs(path, "--predictions")
    except UnlearnError as exc:
        assert not in_range(value, low, high), exc
        one_line(exc, f"--predictions {path} eval_log_forget.json sample {index}", f'field "{field}', "domain")
        return
    assert in_range(value, low, high)
    forget = logs["forget"]
    got = {
        "avg_gt_loss": forget.gt_loss,
        "avg_paraphrased_loss": forget.paraphrased_loss,
        "rougeL_recall": forget.rouge,
        "average_perturb_loss": forget.perturbed_loss[:, 1],
    }[field][index]
    assert got == float(value)


@FUZZ
@given(value=VALUES, which=st.sampled_from(["forget_Q_A_Prob", "forget_Q_A_ROUGE"]))
@specials(which=["forget_Q_A_Prob", "forget_Q_A_ROUGE"])
def test_open_unlearning_log_values(tmp_path_factory, value, which):
    from pytest_unlearn.tofu.logs import load_logs

    def metric(field: str, v: Any) -> dict[str, Any]:
        return {"value_by_index": {str(i): {field: (value if i == 1 and v is None else v)} for i in range(2)}}

    doc = {
        "forget_Q_A_Prob": metric("avg_loss", None if which == "forget_Q_A_Prob" else 1.0),
        "forget_Q_A_PARA_Prob": metric("avg_loss", 1.2),
        "forget_Q_A_PERT_Prob": metric("avg_loss", [2.0, 2.1]),
        "forget_Q_A_ROUGE": metric("rougeL_recall", None if which == "forget_Q_A_ROUGE" else 0.4),
    }
    if which == "forget_Q_A_Prob":
        doc[which]["value_by_index"]["0"]["avg_loss"] = 1.0
    else:
        doc[which]["value_by_index"]["0"]["rougeL_recall"] = 0.4
    path = tmp_path_factory.mktemp("ou") / "TOFU_EVAL.json"
    path.write_text(json.dumps(doc))
    high = 1.0 if which == "forget_Q_A_ROUGE" else None
    try:
        load_logs(path, "--predictions")
    except UnlearnError as exc:
        assert not in_range(value, 0.0, high), exc
        one_line(exc, f"--predictions {path}", "sample 1", "domain")
        return
    assert in_range(value, 0.0, high)


# -- genmu / evallearn: an --images index and the prompt CSVs ------------------------------------------
@FUZZ
@given(value=VALUES)
@specials()
def test_image_index_seed(tmp_path_factory, value):
    from pytest_unlearn.engines.generation import read_image_index

    folder = tmp_path_factory.mktemp("images")
    (folder / "images.jsonl").write_text(json.dumps({"file": "a.png", "prompt": "p", "seed": value}) + "\n")
    try:
        index = read_image_index(folder)
    except UnlearnError as exc:
        one_line(exc, f"{folder / 'images.jsonl'} line 1", 'field "seed"', "(an integer >= 0)")
        return
    assert type(value) is int and value >= 0 and index == {("p", value): folder / "a.png"}


CSV_COLUMNS = {
    "sd_seed": "seed",
    "sd_guidance_scale": "guidance",
    "sd_image_width": "width",
    "sd_image_height": "height",
}
CELLS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1.5", "7", "1e400", "true", "abc", "0x10", "", " 3 "]),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@FUZZ
@given(cell=CELLS, column=st.sampled_from(list(CSV_COLUMNS)))
def test_prompt_csv_generation_settings(tmp_path_factory, cell, column):
    from pytest_unlearn.evallearn.data import load_prompt_set

    columns = list(CSV_COLUMNS)
    cells = {"sd_seed": "1", "sd_guidance_scale": "7", "sd_image_width": "512", "sd_image_height": "512", column: cell}
    path = tmp_path_factory.mktemp("csv") / "i2p.csv"
    path.write_text(
        "prompt," + ",".join(columns) + "\n" + '"a cat",' + ",".join(f'"{cells[c]}"' for c in columns) + "\n"
    )
    try:
        (row,) = load_prompt_set("i2p", path).rows
    except UnlearnError as exc:
        one_line(exc, f"{path}", column)
        return
    value = getattr(row, CSV_COLUMNS[column])
    if value is None:  # an empty cell or "nan": the suite's own setting
        assert cell.strip().lower() in ("", "nan")
        return
    low = 1 if column in ("sd_image_width", "sd_image_height") else 0
    assert math.isfinite(float(value)) and value >= low and value == float(cell)


# -- mufac: the per-image file, through the plugin -------------------------------------------------------
MUFAC_DATA = Path(__file__).resolve().parent.parent / "suites" / "mufac-mini" / "data"


@settings(FUZZ, max_examples=min(EXAMPLES, 4))
@given(value=VALUES, field=st.sampled_from(["losses", "logits"]))
def test_face_predictions_values_through_the_plugin(pytester, value, field):
    def ids(name: str, count: int | None = None) -> list[str]:
        return [row.split(",")[0] for row in (MUFAC_DATA / name).read_text().splitlines()[1:]][:count]

    splits = {
        "test": ids("custom_val_dataset.csv"),
        "forget": ids("custom_train_dataset.csv", 96),
        "unseen": ids("custom_test_dataset.csv"),
    }
    doc = {
        "format": "pytest-unlearn/face-predictions",
        "task": "multiclass",
        "label_names": ["a", "b", "c", "d"],
        "splits": {k: {"ids": v, "logits": [[0.0] * 4 for _ in v], "losses": [math.log(4)] * len(v)} for k, v in splits.items()},
    }  # fmt: skip
    if field == "losses":
        doc["splits"]["unseen"]["losses"][2] = value
    else:
        doc["splits"]["unseen"]["logits"][2][1] = value
    path = pytester.path / "predictions.json"
    path.write_text(json.dumps(doc))
    card = pytester.path / "unlearn-scorecard.json"
    card.unlink(missing_ok=True)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--suite=mufac-mini", f"--predictions={path}")
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output
    # How far the image's loss moves from ln 4, the cross-entropy of four equal logits (a logit
    # x moves it by about x): within 2e-3 it is the loss of its logits and scored, past 3e-3 refused.
    moved = math.inf
    if in_range(value):
        moved = abs(float(value) - math.log(4)) if field == "losses" else abs(float(value))
    if moved < 2e-3:
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output
        return
    if moved < 3e-3:
        return  # at the tolerance: either is right
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: --predictions {path}"), output
    assert not card.exists() or json.loads(card.read_text()).get("passed") is not True


# -- evallearn BenchScore: the aggregates of the scorecards it ranks ---------------------------------------
@FUZZ
@given(value=VALUES)
@specials()
def test_benchscore_aggregate_values(tmp_path_factory, value):
    from pytest_unlearn.evallearn.benchscore import load_scorecard

    path = tmp_path_factory.mktemp("bench") / "card.json"
    card = {
        "schema": "pytest-unlearn/scorecard/1",
        "suite": {"name": "evallearn"},
        "aggregates": {"ua": 0.5, "clip_score": value},
    }
    path.write_text(json.dumps(card))
    entry = load_scorecard(path)  # never raises: a value it cannot rank is left out, as a missing metric
    if in_range(value):
        assert entry.values == {"ua": 0.5, "clip_score": float(value)}
    else:
        assert entry.values == {"ua": 0.5}
