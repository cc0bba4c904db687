"""The miniature world through the real plugin: the erased answer sets pass, the original fails,
and every number equals the transcription of the benchmark's accuracy.py on the same files."""

from __future__ import annotations

import pytest

from fixtures import unlearncanvas_world as world
from tests.suites.unlearncanvas import reference
from tests.suites.unlearncanvas.conftest import classifiers, run

TARGETS = ["Neon_Lines", "Flowers"]


def _model(path):
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(path).eval()
    return lambda pixels: model(pixel_values=pixels).logits


def _expected(canvas, folder, target):
    args = (list(world.STYLES), list(world.OBJECTS), list(world.SEEDS))
    style_acc = reference.accuracy(_model(canvas["style-classifier"]), str(folder), *args, task="style")
    class_acc = reference.accuracy(_model(canvas["object-classifier"]), str(folder), *args, task="class")
    return reference.ua_ira_cra(style_acc, class_acc, target)


def test_the_data_is_as_the_builder_writes_it():
    assert world.diff_data(world.DATA_DIR) == []


def test_erased_answer_sets_pass_with_the_reference_numbers(pytester, canvas):
    result, card = run(pytester, f"--setting=images={canvas['erased']}", *classifiers(canvas))
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(
        [
            "*unlearncanvas: 4 styles x 3 objects x 5 seeds; targets: Neon_Lines, Flowers; judge: classifier*",
            "*2 per-target folders (Neon_Lines = Neon_Lines, Flowers = Flowers)*",
        ]
    )
    checks = {c["id"]: c for c in card["checks"]}
    assert sorted(checks) == sorted(
        [f"{t}-{m}" for t in ("neon-lines", "flowers") for m in ("ua", "ira", "cra")] + ["ua", "ira", "cra"]
    )
    for target in TARGETS:
        expected = _expected(canvas, canvas["erased"] / target, target)
        got = card["aggregates"]["per_target"][target]
        # accuracy.py sums float32 increments of 1/N: its 1.0 may read 1.0000001.
        assert got == pytest.approx(expected, abs=1e-6)
        key = target.lower().replace("_", "-")
        for which in ("ua", "ira", "cra"):
            assert checks[f"{key}-{which}"]["value"] == pytest.approx(expected[which], abs=1e-6)
        # The world's erased answer sets leak one image of their target (FLAWS).
        assert 0.9 <= expected["ua"] < 1.0
    for which in ("ua", "ira", "cra"):
        mean = sum(card["aggregates"]["per_target"][t][which] for t in TARGETS) / 2
        assert checks[which]["value"] == pytest.approx(mean, abs=1e-12)
        assert checks[which]["n"] == 2 * 60
    print("erased:", {t: card["aggregates"]["per_target"][t] for t in TARGETS})


def test_the_original_model_fails_unlearning_and_keeps_retention(pytester, canvas):
    result, card = run(
        pytester,
        f"--setting=images={canvas['original']}",
        "--setting=targets=['Neon_Lines', 'Flowers']",
        *classifiers(canvas),
    )
    result.assert_outcomes(passed=6, failed=3)
    checks = {c["id"]: c for c in card["checks"]}
    assert [k for k, c in checks.items() if not c["passed"]] == ["neon-lines-ua", "flowers-ua", "ua"]
    for target in TARGETS:
        expected = _expected(canvas, canvas["original"], target)
        assert card["aggregates"]["per_target"][target] == pytest.approx(expected, abs=1e-6)
        assert expected["ua"] < 0.1
    assert card["model"]["path"] == str(canvas["original"])
    print("original:", {t: card["aggregates"]["per_target"][t] for t in TARGETS})


FALLBACK = (
    "judge clip: CLIP zero-shot stands in for UnlearnCanvas' style and object classifiers; UA, IRA and CRA are not "
    "comparable to the benchmark's (pass --setting style_classifier= and object_classifier=)"
)


def test_the_clip_fallback_is_said_never_silent(pytester, canvas, genmu_models):
    args = [
        f"--setting=images={canvas['erased']}",
        "--setting=judge=clip",
        f"--setting=clip_model={genmu_models['clip']}",
    ]
    result, card = run(pytester, *args, "-k", "neon-lines-ua")
    assert card["warnings"] == [FALLBACK]
    assert card["settings"]["judge"] == "clip"
    result.stdout.fnmatch_lines(["*judge: clip*", f"*{FALLBACK}*"])
    (check,) = card["checks"]
    assert check["id"] == "neon-lines-ua" and check["error"] is None
    # --strict refuses the stand-in outright.
    strict = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--suite=unlearncanvas-mini", "--strict", *args)
    assert strict.ret == 4
    strict.stderr.fnmatch_lines([f"ERROR: {FALLBACK} (--strict turns warnings into errors)"])
