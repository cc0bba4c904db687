"""``--stress`` on the TOFU and MUSE worlds' shallow unlearnings, through the real plugin: each
passes every plain check of its mini suite and fails under relearn, while the world's model that
never saw the forget set passes the same stressed run (docs/stress.md, "Worlds that show the
failure"). Both verdicts, the failing checks by name, and the drift of docs/stress.md's tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stress_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The stress libraries hold C extensions: import them once in the outer process (pytester's
    # in-process runs cannot import such a module a second time).
    from pytest_unlearn.noise import import_quietly

    import_quietly("bitsandbytes")
    import peft  # noqa: F401

    return tmp_path_factory.mktemp("stress-worlds-cache")


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--scorecard=card.json", *args)
    card_path = pytester.path / "card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    card_path.unlink(missing_ok=True)
    return result, card


def by_id(card: dict) -> dict[str, dict]:
    return {c["id"]: c for c in card["checks"]}


def plain_checks_pass(card: dict) -> bool:
    return all(c["passed"] for c in card["checks"] if "@" not in c["id"])


def verdicts(pytester, fixed: tuple[str, ...], chosen: dict[str, Path], control: str, cache: Path) -> dict[str, dict]:
    """Each chosen model's card under the stressed run ``fixed``: every plain check passes for
    each, the stressed run passes for ``control`` and fails for the others."""
    cards = {}
    for name, path in chosen.items():
        result, cards[name] = run(pytester, *fixed, f"--cache-dir={cache}", f"--model={path}")
        assert result.ret == (0 if name == control else pytest.ExitCode.TESTS_FAILED), result.stdout.str()
        assert plain_checks_pass(cards[name]), {c["id"]: c["value"] for c in cards[name]["checks"]}
    return cards


def test_tofu_shallow_passes_plain_and_fails_relearn_on_half_the_forget_set(pytester, tofu_models, stress_cache):
    from fixtures.figures import TOFU_STRESS_ARGS, readme_block, stress_table
    from fixtures.worlds import models

    fixed = (*TOFU_STRESS_ARGS, f"--reference={tofu_models['retain']}", f"--original-model={tofu_models['target']}")
    chosen = {"retain2": tofu_models["retain2"], "shallow": models("tofu-shallow")["shallow"]}
    cards = verdicts(pytester, fixed, chosen, "retain2", stress_cache)
    checks = by_id(cards["shallow"])
    # Trained on half of the forget authors' answers, the shallow model gives back the other half:
    # its forget probability on the held-out questions passes its bound and the recovery bound fails.
    failing = sorted(i for i, c in checks.items() if not c["passed"])
    assert failing == ["forget-probability@relearn", "recovery@relearn"]
    assert checks["recovery@relearn"]["value"] > 0.25
    # Every forget check of the copy, and of the reference, is scored on the held-out half only.
    forget_n = checks["forget-rouge"]["n"]
    for base in ("forget-quality", "forget-probability", "forget-rouge"):
        sibling = checks[f"{base}@relearn"]
        assert sibling["n"] == forget_n - forget_n // 2, base
        assert "scored on the other" in sibling["details"]["stress"]["holdout"]
    # Forget quality's KS test compares the reference's truth ratios on the same held-out questions.
    assert checks["forget-quality@relearn"]["details"]["reference_n"] == forget_n - forget_n // 2
    trained = set(checks["forget-rouge@relearn"]["details"]["stress"]["trained_on"])
    assert len(trained) == forget_n // 2
    assert checks["recovery@int4"]["passed"]  # no quantization recovery in this world (docs)
    assert stress_table(cards) == readme_block("stress-tofu"), (
        "docs/stress.md's figures drifted: python -m fixtures.figures --write stress-tofu"
    )


def test_muse_shallow_passes_plain_and_fails_relearn_on_the_ledes(pytester, muse_models, stress_cache, tmp_path):
    from fixtures.figures import muse_stress_args, readme_block, stress_table
    from fixtures.muse_shallow import attack_file
    from fixtures.worlds import models

    attack = attack_file(tmp_path / "forget-openings.txt")
    fixed = (*muse_stress_args(attack), f"--reference={muse_models['retrained']}",
             f"--original-model={muse_models['target']}")  # fmt: skip
    chosen = {"retrained": muse_models["retrained"], "shallow": models("muse-shallow")["shallow"]}
    cards = verdicts(pytester, fixed, chosen, "retrained", stress_cache)
    checks = by_id(cards["shallow"])
    # VerbMem scores the continuations, which the attack never showed: they came back.
    assert not checks["verbmem-forget@relearn"]["passed"]
    assert checks["verbmem-forget@relearn"]["value"] > 2 * checks["verbmem-forget"]["value"]
    assert not checks["recovery@relearn"]["passed"]
    # The same three steps leave the retrained model's continuations and answers where they were.
    control = by_id(cards["retrained"])
    assert control["verbmem-forget@relearn"]["value"] < 25 and control["knowmem-forget@relearn"]["value"] < 35
    # 4-bit rounding brings back some of the forget answers (docs/stress.md), too few for recovery.
    assert not checks["knowmem-forget@int4"]["passed"] and checks["recovery@int4"]["passed"]
    assert stress_table(cards) == readme_block("stress-muse"), (
        "docs/stress.md's figures drifted: python -m fixtures.figures --write stress-muse"
    )


def test_muse_shallow_gives_back_the_held_out_half(pytester, muse_models, stress_cache):
    from fixtures.figures import MUSE_HALF_STRESS_ARGS, readme_block, stress_table
    from fixtures.worlds import models

    fixed = (*MUSE_HALF_STRESS_ARGS, f"--reference={muse_models['retrained']}",
             f"--original-model={muse_models['target']}")  # fmt: skip
    chosen = {"retrained": muse_models["retrained"], "shallow": models("muse-shallow")["shallow"]}
    cards = verdicts(pytester, fixed, chosen, "retrained", stress_cache)
    checks = by_id(cards["shallow"])
    assert sorted(i for i, c in checks.items() if not c["passed"]) == [
        "knowmem-forget@relearn", "privleak@relearn", "recovery@relearn", "verbmem-forget@relearn"
    ]  # fmt: skip
    # Scored on the half not trained on: VerbMem's excerpts and KnowMem's questions split between
    # the two halves, and PrivLeak without the forget texts that hold a trained excerpt.
    trained = checks["verbmem-forget@relearn"]["details"]["stress"]["trained_on"]
    trained_excerpts = sum(row.startswith("verbmem-") for row in trained)
    trained_questions = sum(row.startswith("knowmem-forget-") for row in trained)
    assert checks["verbmem-forget@relearn"]["n"] == checks["verbmem-forget"]["n"] - trained_excerpts
    assert checks["knowmem-forget@relearn"]["n"] == checks["knowmem-forget"]["n"] - trained_questions
    assert trained_excerpts and trained_questions
    # In this world each VerbMem excerpt sits in one PrivLeak forget text.
    assert checks["privleak@relearn"]["n"] == checks["privleak"]["n"] - trained_excerpts
    assert stress_table(cards) == readme_block("stress-muse-half"), (
        "docs/stress.md's figures drifted: python -m fixtures.figures --write stress-muse-half"
    )


def test_muse_s_held_out_half_takes_the_same_privleak_texts_from_a_reference_log(pytester, muse_models, stress_cache):
    # --reference as the retrained model's MUSE_EVAL.json: its per-sample PrivLeak scores are cut
    # to the same forget texts as the folder's are scored on, so privleak@relearn is the same.
    from fixtures.figures import MUSE_HALF_STRESS_ARGS
    from fixtures.worlds import models

    _, written = run(pytester, "--suite=muse-mini", f"--model={muse_models['retrained']}",
                     "--setting=write_openunlearning=true", f"--cache-dir={stress_cache}")  # fmt: skip
    reference_log = pytester.path / "retrained_MUSE_EVAL.json"
    reference_log.write_bytes(Path(written["artifacts"]["openunlearning_eval"]).read_bytes())
    shallow = models("muse-shallow")["shallow"]
    privleak = {}
    for reference in (muse_models["retrained"], reference_log):
        _, card = run(pytester, *MUSE_HALF_STRESS_ARGS, f"--reference={reference}", f"--model={shallow}",
                      f"--original-model={muse_models['target']}", f"--cache-dir={stress_cache}")  # fmt: skip
        privleak[reference] = by_id(card)["privleak@relearn"]
    folder, log = privleak.values()
    assert log["n"] == folder["n"] < by_id(card)["privleak"]["n"]
    # The retrained model's AUC on the held-out texts, the same from its log as from its weights
    # (and not its AUC on every text: the plain check's).
    assert log["details"]["auc_retrain"] == pytest.approx(folder["details"]["auc_retrain"], rel=1e-9)
    assert folder["details"]["auc_retrain"] != pytest.approx(by_id(card)["privleak"]["details"]["auc_retrain"])
    assert log["value"] == pytest.approx(folder["value"], rel=1e-9)


def test_wmdp_shallow_passes_plain_and_fails_relearn_on_half_the_questions(pytester, wmdp_models, stress_cache):
    from fixtures.figures import WMDP_STRESS_ARGS, readme_block, stress_table
    from fixtures.worlds import models

    shallow_world = models("wmdp-shallow")
    fixed = (*WMDP_STRESS_ARGS, f"--original-model={wmdp_models['target']}")
    chosen = {name: shallow_world[name] for name in ("retrained", "shallow")}
    cards = verdicts(pytester, fixed, chosen, "retrained", stress_cache)
    checks = by_id(cards["shallow"])
    # Deeb & Roger: half of the hazardous questions with their answers bring the other half back.
    assert sorted(i for i, c in checks.items() if not c["passed"]) == [
        "bio-accuracy@relearn", "chem-accuracy@relearn", "cyber-accuracy@relearn", "recovery@relearn",
    ]  # fmt: skip
    assert checks["recovery@relearn"]["value"] > 0.6
    for subset in ("bio", "cyber", "chem"):
        held = checks[f"{subset}-accuracy@relearn"]
        assert held["value"] > 0.6 and held["n"] < checks[f"{subset}-accuracy"]["n"], (subset, held)
    assert checks["recovery@relearn"]["details"]["stress"]["holdout"] == (
        "trained on 36 forget items (a half drawn with seed 1), scored on the other 36"
    )
    # The model that never saw the answers learns only the half it is shown.
    assert abs(by_id(cards["retrained"])["recovery@relearn"]["value"]) < 0.1
    assert stress_table(cards) == readme_block("stress-wmdp"), (
        "docs/stress.md's figures drifted: python -m fixtures.figures --write stress-wmdp"
    )
