"""The suite discriminates: through the real plugin, on tiny OLMo models trained offline.

- target (memorized forget + retain + general facts): fails the forget checks, poor MIA score;
- retrained (never saw the forget set): passes them with an MIA score near 1;
- over_unlearned (lost the general facts too): fails the MMLU gate and the retain checks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fixtures.figures import SEMEVAL_ARGS, readme_block, semeval_table

pytestmark = pytest.mark.slow

FORGET = [f"task{t}-{k}-forget" for t in (1, 2, 3) for k in ("regurgitation", "knowledge")]
RETAIN = [f"task{t}-{k}-retain" for t in (1, 2, 3) for k in ("regurgitation", "knowledge")]


@pytest.fixture(scope="module")
def world_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for this module: the README-figures check reuses the other tests' passes."""
    return tmp_path_factory.mktemp("semeval-world-cache")


def run_suite(pytester: pytest.Pytester, model: Path, cache: Path) -> tuple[int, dict]:
    """The whole suite on one model, through pytest and the plugin, as ``fixtures.figures`` runs it."""
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        f"--model={model}",
        *SEMEVAL_ARGS,
        f"--cache-dir={cache}",
        "--scorecard=card.json",
        "--junitxml=junit.xml",
    )
    return int(result.ret), json.loads((pytester.path / "card.json").read_text())


def verdicts(card: dict) -> dict[str, bool]:
    return {check["id"]: check["passed"] for check in card["checks"]}


def values(card: dict) -> dict[str, float]:
    return {check["id"]: check["value"] for check in card["checks"]}


def test_target_model_fails_every_forget_check_and_the_mia_check(pytester, semeval_models, world_cache):
    exit_code, card = run_suite(pytester, semeval_models["target"], world_cache)
    assert exit_code == pytest.ExitCode.TESTS_FAILED
    assert not any(verdicts(card)[check] for check in FORGET)
    assert all(verdicts(card)[check] for check in RETAIN)
    assert card["aggregates"]["mia_auc"] > 0.9 and card["aggregates"]["mia_score"] < 0.2
    assert verdicts(card)["mmlu"]
    assert_consistent(card, semeval_models["target"])


def test_retrained_model_passes_the_forget_checks_with_an_mia_score_near_one(pytester, semeval_models, world_cache):
    exit_code, card = run_suite(pytester, semeval_models["retrained"], world_cache)
    assert all(verdicts(card)[check] for check in FORGET + RETAIN)
    assert card["aggregates"]["mia_score"] >= 0.7
    assert verdicts(card)["mmlu"] and verdicts(card)["final-score"]
    assert exit_code == pytest.ExitCode.OK and card["passed"] is True
    assert_consistent(card, semeval_models["retrained"])


def test_over_unlearned_model_fails_the_mmlu_gate_and_the_retain_checks(pytester, semeval_models, world_cache):
    exit_code, card = run_suite(pytester, semeval_models["over_unlearned"], world_cache)
    assert exit_code == pytest.ExitCode.TESTS_FAILED
    assert not verdicts(card)["mmlu"] and card["aggregates"]["mmlu"] < 0.371
    assert not any(verdicts(card)[check] for check in RETAIN)
    assert_consistent(card, semeval_models["over_unlearned"])


def assert_consistent(card: dict, model: Path) -> None:
    """Aggregates recomputed by hand from the checks; fingerprint and artifacts by hand too."""
    by_id = values(card)
    aggregates = card["aggregates"]
    terms = [by_id[c] for c in FORGET + RETAIN]
    # Harmonic mean by hand: n / sum(1/x), zero when any term is zero.
    expected = 0.0 if min(terms) == 0 else len(terms) / sum(1 / t for t in terms)
    assert aggregates["task_aggregate"] == pytest.approx(expected)
    assert aggregates["mia_score"] == pytest.approx(1 - 2 * abs(aggregates["mia_auc"] - 0.5))
    assert aggregates["final_score"] == pytest.approx((expected + aggregates["mia_score"] + aggregates["mmlu"]) / 3)
    assert by_id["final-score"] == pytest.approx(aggregates["final_score"])
    digest = hashlib.sha256(Path(model, "model.safetensors").read_bytes()).digest()
    assert card["model"]["fingerprint"] == "sha256:" + hashlib.sha256(b"model.safetensors\0" + digest).hexdigest()
    generations = [json.loads(line) for line in Path(card["artifacts"]["generations"]).read_text().splitlines()]
    assert len(generations) == 108
    losses = [json.loads(line) for line in Path(card["artifacts"]["mia_losses"]).read_text().splitlines()]
    assert {row["set"] for row in losses} == {"member", "nonmember"}
    predictions = [json.loads(line) for line in Path(card["artifacts"]["mmlu_predictions"]).read_text().splitlines()]
    correct = sum(row["correct"] for row in predictions)
    assert card["aggregates"]["mmlu"] == pytest.approx(correct / len(predictions))
    timings = card["timings"]
    assert card["environment"]["device"] == "cpu" and set(timings) >= {"text", "mia", "mmlu", "total"}
    # Each phase's peak resident memory beside its seconds (tests/test_memory.py measures the
    # measurement); torch and a model are resident in every phase, and the run's peak covers them.
    phases = [k for k in timings if "." not in k and k != "total"]
    assert all(timings[f"{phase}.peak_rss_mib"] > 50 for phase in phases), timings
    assert timings["total.peak_rss_mib"] >= max(timings[f"{phase}.peak_rss_mib"] for phase in phases)
    assert not [k for k in timings if k.endswith("peak_cuda_mib")]  # no CUDA: no GPU figure


def test_readme_figures_are_those_of_the_committed_world(pytester, semeval_models, world_cache):
    """The README's table of this world is what the plugin measures on it (python -m fixtures.figures)."""
    cards = {name: run_suite(pytester, semeval_models[name], world_cache)[1] for name in semeval_models}
    assert readme_block("semeval") == semeval_table(cards), (
        "README figures drifted: run python -m fixtures.figures --write"
    )
