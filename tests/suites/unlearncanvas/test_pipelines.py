"""The world's own diffusion pipelines through the suite's generation path: the per-target erased
pipelines pass, the original fails UA (fixtures/unlearncanvas_pipelines.py).

Each model draws its answer set through ``--model`` (the images are generated, saved in the
benchmark's layout and judged by the world's classifiers), and the card's numbers equal the
transcription of accuracy.py on the saved ``.jpg`` files. All five seeds (60 images a model,
about 10 s of generation each on one thread); the figures are docs/suites/unlearncanvas.md's,
checked here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures import unlearncanvas_world as world
from tests.suites.unlearncanvas import reference
from tests.suites.unlearncanvas.conftest import classifiers, run
from tests.suites.unlearncanvas.test_world import TARGETS, _model

SEEDS = list(world.SEEDS)
DOC = Path(__file__).resolve().parents[3] / "docs" / "suites" / "unlearncanvas.md"


@pytest.fixture(scope="module")
def pipelines():
    """original-sd (one pipeline) and erased-sd (a folder of per-target pipelines)."""
    import diffusers  # noqa: F401

    from fixtures.worlds import models

    return models("unlearncanvas-pipelines")


def _expected(canvas, folder, target):
    names = (list(world.STYLES), list(world.OBJECTS), SEEDS)
    style_acc = reference.accuracy(_model(canvas["style-classifier"]), str(folder), *names, task="style")
    class_acc = reference.accuracy(_model(canvas["object-classifier"]), str(folder), *names, task="class")
    return reference.ua_ira_cra(style_acc, class_acc, target)


def _documented(model: str, card: dict) -> None:
    """Each target's row of the doc's figures block is this run's."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("<!-- unlearncanvas-pipelines-figures:start")
    block = text[text.index("\n", start) + 1 : text.index("<!-- unlearncanvas-pipelines-figures:end -->")]
    failed = {c["id"] for c in card["checks"] if not c["passed"]}
    for target in TARGETS:
        scores = card["aggregates"]["per_target"][target]
        key = target.lower().replace("_", "-")
        fails = [which.upper() for which in ("ua", "ira", "cra") if f"{key}-{which}" in failed]
        verdict = f"fails {', '.join(fails)}" if fails else "pass"
        row = f"| {model} | {target} | {scores['ua']:.4f} | {scores['ira']:.4f} | {scores['cra']:.4f} | {verdict} |"
        assert row in block.splitlines(), f"docs/suites/unlearncanvas.md figures drifted; now:\n{row}"


def _settings(tmp_path_factory):
    seeds = " ".join(map(str, SEEDS))
    return [f"--setting=seeds={seeds}", f"--cache-dir={tmp_path_factory.mktemp('canvas-sd-cache')}"]


def test_the_erased_pipelines_pass(pytester, canvas, pipelines, tmp_path_factory):
    erased = pipelines["erased-sd"]
    result, card = run(pytester, f"--model={erased}", *_settings(tmp_path_factory), *classifiers(canvas))
    result.stdout.fnmatch_lines(["*2 per-target folders (Neon_Lines = Neon_Lines, Flowers = Flowers)*"])
    result.assert_outcomes(passed=9)
    for target in TARGETS:
        answers = pytester.path / "card-artifacts" / "answers" / target
        assert len(list(answers.glob("*.jpg"))) == len(world.STYLES) * len(world.OBJECTS) * len(SEEDS)
        assert card["aggregates"]["per_target"][target] == pytest.approx(_expected(canvas, answers, target), abs=1e-6)
    _documented("erased-sd", card)


def test_the_original_pipeline_fails_ua(pytester, canvas, pipelines, tmp_path_factory):
    original = pipelines["original-sd"]
    targets = "--setting=targets=['Neon_Lines', 'Flowers']"
    result, card = run(pytester, f"--model={original}", targets, *_settings(tmp_path_factory), *classifiers(canvas))
    result.assert_outcomes(passed=6, failed=3)
    checks = {c["id"]: c for c in card["checks"]}
    assert [k for k, c in checks.items() if not c["passed"]] == ["neon-lines-ua", "flowers-ua", "ua"]
    answers = pytester.path / "card-artifacts" / "answers" / "model"
    for target in TARGETS:
        assert card["aggregates"]["per_target"][target] == pytest.approx(_expected(canvas, answers, target), abs=1e-6)
    _documented("original-sd", card)
