"""Genμ's single-concept submission form on the miniature world: one model per concept.

Three ESD-x models, each erasing one concept of the same original: the world's ``erased``
(Golf Ball) and ``fixtures/genmu_extra.py``'s Sunset and Neon. Given as ``--model DIR`` (one
sub-folder per concept, matched ignoring case and spaces) or as ``--model CONCEPT=PATH``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_xdist import comparable

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
CONCEPTS = {"Golf Ball": "golf-ball", "Sunset": "sunset", "Neon": "neon"}


def three_models(genmu_models, genmu_extra_models) -> dict[str, Path]:
    return {
        "Golf Ball": genmu_models["erased"],
        "Sunset": genmu_extra_models["erased-sunset"],
        "Neon": genmu_extra_models["erased-neon"],
    }


def weight_ratio(original: Path, model: Path) -> float:
    """‖θ_orig − θ_un‖₂ / #parameters, from the two models' safetensors files."""
    from safetensors.numpy import load_file

    squared, count = 0.0, 0
    for component in ("unet", "text_encoder", "vae"):
        (before,) = (original / component).glob("*.safetensors")
        (after,) = (model / component).glob("*.safetensors")
        a, b = load_file(before), load_file(after)
        for key in a:
            squared += float(((a[key].astype("float64") - b[key].astype("float64")) ** 2).sum())
            count += a[key].size
    return squared**0.5 / count


def test_a_folder_of_single_concept_models(pytester, genmu_models, genmu_extra_models, genmu_cache):
    models = three_models(genmu_models, genmu_extra_models)
    folder = pytester.path / "submission"
    folder.mkdir()
    # Folder names as people write them: any case, '_' or spaces; a stray folder is named.
    for name, concept in (("golf_ball", "Golf Ball"), ("SUNSET", "Sunset"), ("neon ", "Neon")):
        (folder / name).symlink_to(models[concept], target_is_directory=True)
    (folder / "notes").mkdir()
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "--suite=genmu-mini",
        f"--model={folder}",
        f"--original-model={genmu_models['original']}",
        f"--setting=clip_model={genmu_models['clip']}",
        "--batch-size=32",
        f"--cache-dir={genmu_cache}",
        "--scorecard=card.json",
    )
    out = result.stdout.str()
    card = json.loads((pytester.path / "card.json").read_text())
    checks = {c["id"]: c for c in card["checks"]}
    result.stdout.fnmatch_lines(
        [
            f"unlearn: --model {folder}: 3 single-concept models (golf_ball = Golf Ball, SUNSET = Sunset, "
            "neon  = Neon); no model for: Tennis Ball, Blue Jay, Goldfish, Night Sky, Juggling; "
            "ignored folders: notes"
        ]
    )
    assert card["settings"]["targets"] == ["Golf Ball", "Sunset", "Neon"]
    # Each model's 60 images are made once, the original's 84 (the union) once for all three
    # (some may come from the session's shared cache, made by an earlier test): one pass each.
    for slug in CONCEPTS.values():
        assert (
            len(re.findall(rf"unlearn: genmu-mini unlearned-{slug} images: 60/60, .*done \((\d+) generated", out)) == 1
        ), out
    assert len(re.findall(r"unlearn: genmu-mini original images: 84/84, .*done \((\d+) generated", out)) == 1, out
    # Each model forgets its own concept and keeps the others (every other concept of the CSV,
    # the two other targets included).
    for concept, slug in CONCEPTS.items():
        for kind in ("direct", "indirect", "adversarial"):
            assert checks[f"{slug}-forget-{kind}"]["passed"], checks[f"{slug}-forget-{kind}"]
        retain = checks[f"{slug}-retain"]
        assert retain["passed"], retain
        assert concept not in retain["details"]["concepts"]
        assert set(CONCEPTS) - {concept} <= set(retain["details"]["concepts"])
    # Per concept, the ERR of its own model's five accuracies; the run's ERR of their averages.
    per_concept = card["aggregates"]["per_concept"]
    for concept, slug in CONCEPTS.items():
        parts = per_concept[concept]
        assert checks[f"{slug}-err"]["value"] == pytest.approx(5 / sum(1 / v for v in parts.values()))
    averages = {k: sum(p[k] for p in per_concept.values()) / 3 for k in per_concept["Golf Ball"]}
    assert checks["err"]["value"] == pytest.approx(5 / sum(1 / v for v in averages.values()))
    # The tie-breaker: (1/N_c) Σ_i ‖θ_orig − θ_un^i‖₂ / #parameters, recomputed from the files.
    expected = {c: weight_ratio(genmu_models["original"], path) for c, path in models.items()}
    change = checks["weight-change-ratio"]
    assert change["value"] == pytest.approx(sum(expected.values()) / 3, rel=1e-9)
    assert change["details"]["models"] == 3
    for concept, ratio in expected.items():
        term = change["details"]["per_model"][concept]
        assert term["ratio"] == pytest.approx(ratio, rel=1e-9)
        assert term["per_component"]["vae"]["l2"] == 0 and term["per_component"]["unet"]["l2"] > 0
    assert sorted(card["model"]["models"]) == sorted(CONCEPTS)
    # The HTML report: one section per model, each of its 60 images beside the original's.
    report = (pytester.path / "card.html").read_text()
    assert report.count("<h1>model of ") == 3 and report.count("<img") == 2 * 3 * 60
    assert sorted(k for k in card["artifacts"] if k.startswith("images_")) == [
        "images_original",
        "images_unlearned-golf-ball",
        "images_unlearned-neon",
        "images_unlearned-sunset",
    ]


def test_concept_equals_path_and_two_workers_give_the_same_scorecard(
    pytester, monkeypatch, genmu_models, genmu_extra_models, genmu_cache
):
    """``--model CONCEPT=PATH`` repeated; under xdist each model is its own group, and the
    controller's scorecard is the one ``-n 0`` writes. (The images come from the cache the
    test above filled: what is compared is the grouping and the merge of the workers' states.)"""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    models = three_models(genmu_models, genmu_extra_models)
    args = [
        "-p",
        "no:cacheprovider",
        "--suite=genmu-mini",
        *(f"--model={concept}={path}" for concept, path in models.items()),
        f"--original-model={genmu_models['original']}",
        f"--setting=clip_model={genmu_models['clip']}",
        "--batch-size=32",
        f"--cache-dir={genmu_cache}",
        "--scorecard=card.json",
        "-v",
    ]
    cards = []
    for workers in ("0", "2"):
        result = pytester.runpytest_subprocess("-n", workers, *args)
        cards.append(json.loads((pytester.path / "card.json").read_text()))
        (pytester.path / "card.json").rename(pytester.path / f"card-n{workers}.json")
    assert comparable(cards[1]) == comparable(cards[0])
    assert sorted(cards[0]["model"]["models"]) == sorted(CONCEPTS)
    result.stdout.fnmatch_lines(
        [
            "*golf-ball-forget-direct*@genmu-mini/images:golf-ball*",
            "*sunset-forget-direct*@genmu-mini/images:sunset*",
        ]
    )


def test_model_errors_are_one_line(pytester, genmu_models, semeval_models):
    cases = [
        (
            ["--suite=genmu-mini", f"--model={genmu_models['erased']}", f"--model={genmu_models['original']}"],
            f"ERROR: --model {genmu_models['erased']}: with several models, each is CONCEPT=PATH "
            "(one single-concept model per concept)",
        ),
        (
            [
                "--suite=genmu-mini",
                f"--model=Golf Bal={genmu_models['erased']}",
                f"--model=Neon={genmu_models['erased']}",
            ],
            f"ERROR: --model Golf Bal={genmu_models['erased']}: 'Golf Bal' is not a concept of *prompts.csv",
        ),
        (
            ["--suite=genmu-mini", f"--model=Neon={genmu_models['erased']}", "--concept=Sunset"],
            "ERROR: --concept 'Sunset' has no model: pass --model Sunset=PATH",
        ),
        (
            ["--suite=genmu-mini", f"--model=Neon={genmu_models['erased']}", f"--images={genmu_models['clip']}"],
            "ERROR: --images scores the images of one model: drop it, or pass a single --model",
        ),
        (
            ["--suite=semeval", f"--model={semeval_models['target']}", f"--model={semeval_models['retrained']}"],
            "ERROR: --model given 2 times: suite semeval certifies one model; pass one --model PATH",
        ),
    ]
    for args, line in cases:
        # The judge is a genmu setting: semeval has none (an unknown setting is its own error).
        clip = [f"--setting=clip_model={genmu_models['clip']}"] if "genmu" in args[0] else []
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *clip, *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        result.stderr.fnmatch_lines([line])
        assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_concept_selects_some_of_the_models(genmu_models, genmu_extra_models):
    """``--concept`` with per-concept models: the other models draw nothing, not even for the original."""
    from pytest_unlearn.evaluation import RunSettings, create_backend
    from pytest_unlearn.session import resolve_suite

    models = three_models(genmu_models, genmu_extra_models)
    settings = RunSettings(
        models=tuple(f"{concept}={path}" for concept, path in models.items()),
        concepts=("neon",),
        clip_model=str(genmu_models["clip"]),
        original_model=genmu_models["original"],
    )
    backend = create_backend(resolve_suite("genmu-mini"), settings)
    assert backend.targets == ["Neon"] and list(backend.model_paths) == ["Neon"]
    # Neon's 9 prompts and the 21 direct prompts of the 7 other concepts, 2 seeds each.
    assert len(backend._original_pairs()) == 60
    assert [spec.id for spec in backend.manifest.checks][:3] == [
        "neon-forget-direct",
        "neon-forget-indirect",
        "neon-forget-adversarial",
    ]
