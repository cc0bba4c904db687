"""The genmu suite discriminates: through the real plugin, on the miniature concept world.

``original`` is a tiny Stable Diffusion pipeline that draws all eight concepts; ``erased`` is
``original`` after ESD-x on Golf Ball (fixtures/genmu_world.py). The judge is the world's tiny
CLIP. Each test runs ``pytest --suite genmu-mini`` in a pytester folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fixtures.figures import GENMU_ARGS, genmu_table, readme_block

pytestmark = pytest.mark.slow

TARGET = "golf-ball"
FORGET = [f"{TARGET}-forget-{kind}" for kind in ("direct", "indirect", "adversarial")]
KEPT = [f"{TARGET}-retain", f"{TARGET}-adjacent", "clip-score-retain"]


@pytest.fixture(scope="module")
def world_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for this module: the README-figures check reuses the other tests' images."""
    return tmp_path_factory.mktemp("genmu-world-cache")


def run_suite(pytester: pytest.Pytester, models: dict[str, Path], *args: str) -> tuple[int, dict]:
    """genmu-mini through the plugin, as ``fixtures.figures`` runs it (pass ``--cache-dir`` to share)."""
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        *GENMU_ARGS,
        f"--setting=clip_model={models['clip']}",
        "--scorecard=card.json",
        "--junitxml=junit.xml",
        *args,
        no_reraise_ctrlc=True,
    )
    card_path = pytester.path / "card.json"
    assert card_path.is_file(), result.stdout.str()
    pytester.last_output = result.stdout.str()  # type: ignore[attr-defined]
    return int(result.ret), json.loads(card_path.read_text())


def by_id(card: dict) -> dict[str, dict]:
    return {check["id"]: check for check in card["checks"]}


def test_original_model_fails_the_forget_checks_and_changes_no_weight(pytester, genmu_models, world_cache):
    """The model before unlearning draws golf balls: every forget check of Golf Ball fails.

    Checked against itself, its weight-change ratio is exactly 0 and its CLIP score drop 0.
    """
    exit_code, card = run_suite(
        pytester,
        genmu_models,
        f"--model={genmu_models['original']}",
        f"--original-model={genmu_models['original']}",
        f"--cache-dir={world_cache}",
    )
    checks = by_id(card)
    assert exit_code == pytest.ExitCode.TESTS_FAILED
    for check in FORGET:
        assert checks[check]["passed"] is False, checks[check]
        assert checks[check]["value"] <= 0.34, checks[check]
    for check in (f"{TARGET}-retain", "clip-score-retain"):
        assert checks[check]["passed"] is True, checks[check]
    # A_fgt = 0 makes ERR 0 by the harmonic mean's zero rule.
    assert checks[f"{TARGET}-err"]["value"] == 0.0
    # (A_adj is not asserted here: the tiny original draws Juggling, an adjacent concept of Golf
    # Ball, badly enough that the judge sees golf balls in it; the erased model does better.)
    assert checks["weight-change-ratio"]["value"] == 0.0 and checks["weight-change-ratio"]["passed"]
    assert checks["clip-score-drop"]["value"] == 0.0
    # Each image is generated once: the original's images are the model's own (same weights).
    assert card["model"]["fingerprint"] == card["model"]["original"]["fingerprint"]


def test_erased_model_passes_forget_checks_and_keeps_the_other_concepts(pytester, genmu_models, world_cache):
    exit_code, card = run_suite(
        pytester,
        genmu_models,
        f"--model={genmu_models['erased']}",
        f"--original-model={genmu_models['original']}",
        f"--cache-dir={world_cache}",
    )
    checks = by_id(card)
    # Generation reports its progress on the terminal, past pytest's output capturing.
    # (The original's images may come from the module's cache, made by the test before.)
    assert re.search(
        r"unlearn: genmu-mini unlearned images: 60/60, \S+ elapsed, done \(60 generated, the rest from the cache\)",
        pytester.last_output,
    )
    assert re.search(r"unlearn: genmu-mini original images: 60/60, \S+ elapsed, done \(", pytester.last_output)
    failed = [c["id"] for c in card["checks"] if not c["passed"]]
    assert exit_code == pytest.ExitCode.OK and failed == [], failed
    for check in FORGET:
        assert checks[check]["value"] >= 0.8, checks[check]
    aggregates = card["aggregates"]
    assert aggregates["a_ret"] >= 0.8 and aggregates["a_adj"] >= 0.8
    # ERR by hand: the harmonic mean of the five per-concept accuracies.
    parts = aggregates["per_concept"]["Golf Ball"]
    expected_err = 5 / sum(1 / parts[k] for k in ("a_fgt", "a_ind", "a_adv", "a_ret", "a_adj"))
    assert checks[f"{TARGET}-err"]["value"] == pytest.approx(expected_err)
    # ESD-x edits only cross-attention: the change is in the UNet's attn2 layers and nowhere else.
    change = checks["weight-change-ratio"]
    assert 0 < change["value"] <= change["threshold"]
    components = change["details"]["per_component"]
    assert components["unet"]["l2"] > 0 and components["vae"]["l2"] == 0 and components["text_encoder"]["l2"] == 0
    top = change["details"]["top_layers"]
    assert top and all(".attn2." in layer["layer"] for layer in top), top
    # Retention CLIP score does not drop against the original model (here it even rises, with the
    # golf balls gone from Juggling's images); the drop is original minus unlearned.
    drop = checks["clip-score-drop"]
    assert drop["value"] <= drop["threshold"]
    assert drop["value"] == pytest.approx(drop["details"]["original"] - drop["details"]["unlearned"])
    assert drop["details"]["unlearned"] == pytest.approx(checks["clip-score-retain"]["value"])
    # Artifacts: both models' images with their index, and the HTML grid showing them side by side.
    artifacts = pytester.path / "card-artifacts" / "images"
    assert pytester.path / card["artifacts"]["images_unlearned"] == artifacts / "unlearned" / "images.jsonl"
    for which in ("unlearned", "original"):
        index = [json.loads(line) for line in (artifacts / which / "images.jsonl").read_text().splitlines()]
        assert len(index) == card["settings"]["images_per_prompt"] * 30  # 9 target + 21 retention prompts
        assert all((artifacts / which / row["file"]).is_file() for row in index)
    report = (pytester.path / "card.html").read_text()
    assert report.count("<img") == 2 * len(index) and "original: judge sees" in report

    # --images: the kept images, scored again without any diffusion model, give the same verdicts.
    rescored_exit, rescored = run_suite(pytester, genmu_models, f"--images={artifacts / 'unlearned'}", "-k", "not drop")
    again = by_id(rescored)
    for check in [*FORGET, *KEPT, f"{TARGET}-err"]:
        assert again[check]["value"] == pytest.approx(checks[check]["value"]), check
    assert rescored_exit == pytest.ExitCode.TESTS_FAILED  # only the weight check, which needs --model
    assert [c["id"] for c in rescored["checks"] if not c["passed"]] == ["weight-change-ratio"]


def test_single_file_checkpoint_with_model_config(pytester, genmu_models, tmp_path):
    """An original-format single checkpoint of the erased model, read through --model-config.

    Its weight-change ratio against the original folder is recomputed here from the two models'
    safetensors files: the L2 norm of the whole difference over the total parameter count.
    """
    from safetensors.numpy import load_file

    from fixtures.sd_single_file import write_single_file

    checkpoint = write_single_file(genmu_models["erased"], tmp_path / "erased.safetensors")
    exit_code, card = run_suite(
        pytester,
        genmu_models,
        f"--model={checkpoint}",
        f"--model-config={genmu_models['original']}",
        f"--original-model={genmu_models['original']}",
        "--setting=images_per_prompt=1",
        "-k",
        "forget or weight",
        "--unlearn-partial",  # a subset on purpose (issue 23: the gate is otherwise over every check)
    )
    checks = by_id(card)
    assert exit_code == pytest.ExitCode.OK, card
    assert sorted(checks) == sorted([*FORGET, "weight-change-ratio"])
    assert all(checks[c]["value"] >= 0.8 for c in FORGET)
    assert card["model"]["path"] == str(checkpoint)

    squared, count = 0.0, 0
    for component in ("unet", "text_encoder", "vae"):
        (before,) = (genmu_models["original"] / component).glob("*.safetensors")
        (after,) = (genmu_models["erased"] / component).glob("*.safetensors")
        a, b = load_file(before), load_file(after)
        assert a.keys() == b.keys()
        for key in a:
            squared += float(((a[key].astype("float64") - b[key].astype("float64")) ** 2).sum())
            count += a[key].size
    assert checks["weight-change-ratio"]["value"] == pytest.approx(squared**0.5 / count, rel=1e-9)


def test_readme_figures_are_those_of_the_committed_world(pytester, genmu_models, world_cache):
    """The README's table of this world is what the plugin measures on it (python -m fixtures.figures)."""
    original = f"--original-model={genmu_models['original']}"
    cards = {
        name: run_suite(
            pytester, genmu_models, f"--model={genmu_models[name]}", original, f"--cache-dir={world_cache}"
        )[1]
        for name in ("original", "erased")
    }
    assert readme_block("genmu") == genmu_table(cards), "README figures drifted: run python -m fixtures.figures --write"
