"""Submissions as models: a folder of per-target diffusers models, each answer set drawn once,
cached, judged after the benchmark's JPEG round trip, one xdist group per model.

The pipelines are the Genμ world's tiny Stable Diffusion models: what they draw for the canvas
prompts is whatever it is, so this proves the machinery and the arithmetic (the transcription of
accuracy.py on the saved answer sets), not the verdicts, which the answer-set world and the canvas
world's own pipelines (test_pipelines.py) prove."""

from __future__ import annotations

import pytest

from fixtures import unlearncanvas_world as world
from pytest_unlearn.evaluation import RunSettings, check_groups, create_backend
from pytest_unlearn.manifest import resolve_suite
from tests.suites.unlearncanvas import reference
from tests.suites.unlearncanvas.conftest import classifiers, run
from tests.suites.unlearncanvas.test_world import _model


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One artifact cache for the module: a model's answer set drawn by one test is read by the next."""
    return tmp_path_factory.mktemp("canvas-cache")


@pytest.fixture
def per_target(tmp_path, genmu_models):
    folder = tmp_path / "submission"
    folder.mkdir()
    # Folder names are matched ignoring case, spaces, "_" and "-".
    (folder / "neon-lines").symlink_to(genmu_models["original"], target_is_directory=True)
    (folder / "FLOWERS").symlink_to(genmu_models["erased"], target_is_directory=True)
    (folder / "notes").mkdir()
    return folder


def test_per_target_models_draw_their_answer_sets_once(pytester, canvas, per_target, cache):
    # Two denoising steps: the answer sets' content does not matter here, their handling does.
    args = [f"--model={per_target}", "--setting=seeds=188", "--setting=steps=2", f"--cache-dir={cache}"]
    result, card = run(pytester, *args, *classifiers(canvas))
    assert all(c["error"] is None for c in card["checks"]), result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"*--model {per_target}: 2 per-target folders (neon-lines = Neon_Lines, FLOWERS = Flowers); ignored folders: notes*"
        ]
    )
    assert set(card["model"]["models"]) == {"Neon_Lines", "Flowers"}
    for target in ("Neon_Lines", "Flowers"):
        answers = pytester.path / "card-artifacts" / "answers" / target
        assert sorted(p.name for p in answers.iterdir()) == sorted(
            world.image_name(s, o, 188) for s in world.STYLES for o in world.OBJECTS
        )
        # The benchmark's accuracy.py on the saved .jpg files gives the card's numbers.
        names = (list(world.STYLES), list(world.OBJECTS), [188])
        style_acc = reference.accuracy(_model(canvas["style-classifier"]), str(answers), *names, task="style")
        class_acc = reference.accuracy(_model(canvas["object-classifier"]), str(answers), *names, task="class")
        expected = reference.ua_ira_cra(style_acc, class_acc, target)
        assert card["aggregates"]["per_target"][target] == pytest.approx(expected, abs=1e-6)
    first = card["cache_reuse"]["checks"]
    assert {e["reused"] for c in ("neon-lines-ua", "flowers-ua") for e in first[c]} == {False}

    # A second run draws nothing: every batch comes from the cache, the numbers are the same.
    _, card2 = run(pytester, *args, *classifiers(canvas), card="card2.json")
    assert {e["reused"] for c in ("neon-lines-ua", "flowers-ua") for e in card2["cache_reuse"]["checks"][c]} == {True}
    assert card2["aggregates"]["per_target"] == card["aggregates"]["per_target"]


def test_one_xdist_group_per_model(canvas, per_target):
    overrides = {
        "seeds": "188",
        "style_classifier": str(canvas["style-classifier"]),
        "object_classifier": str(canvas["object-classifier"]),
    }
    backend = create_backend(resolve_suite("unlearncanvas-mini"), RunSettings(model=per_target, overrides=overrides))
    groups = check_groups(backend.manifest, list(backend.manifest.checks), backend)
    by_group: dict[str, list[str]] = {}
    for check, group in groups.items():
        by_group.setdefault(group, []).append(check)
    assert sorted(by_group.values()) == sorted(
        [
            ["neon-lines-ua", "neon-lines-ira", "neon-lines-cra"],
            ["flowers-ua", "flowers-ira", "flowers-cra"],
            ["ua", "ira", "cra"],
        ]
    )


def test_one_model_for_several_targets_draws_one_answer_set(pytester, canvas, genmu_models, cache):
    args = [f"--model={genmu_models['original']}", "--setting=seeds=188", "--setting=steps=2", f"--cache-dir={cache}"]
    _, card = run(pytester, *args, "--setting=targets=['Neon_Lines', 'Flowers']", *classifiers(canvas))
    assert all(c["error"] is None for c in card["checks"])
    assert [p.name for p in (pytester.path / "card-artifacts" / "answers").iterdir()] == ["model"]
    assert card["model"]["path"] == str(genmu_models["original"]) and "models" not in card["model"]
    # One answer set scored for each target: the same classifications, each target's own split.
    answers = pytester.path / "card-artifacts" / "answers" / "model"
    names = (list(world.STYLES), list(world.OBJECTS), [188])
    style_acc = reference.accuracy(_model(canvas["style-classifier"]), str(answers), *names, task="style")
    class_acc = reference.accuracy(_model(canvas["object-classifier"]), str(answers), *names, task="class")
    for target in ("Neon_Lines", "Flowers"):
        expected = reference.ua_ira_cra(style_acc, class_acc, target)
        assert card["aggregates"]["per_target"][target] == pytest.approx(expected, abs=1e-6)
